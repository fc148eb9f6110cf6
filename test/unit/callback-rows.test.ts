import { recentRows } from '../../src/http/callbacks.routes';
import type { ReadTask } from '../../src/tasks/task-repository';

const task = (id: string, state: ReadTask['state']) => ({ id, state, request: { prompt: 'a long request body' } }) as unknown as ReadTask;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('rows kept for a task’s next callback', () => {
  it('keeps a task the upstream is still working on, without its request body, for one take', () => {
    const rows = recentRows();
    rows.keep(task('a', 'processing'));
    expect(rows.take('a')).toMatchObject({ id: 'a', state: 'processing', request: null });
    expect(rows.take('a')).toBeUndefined();
  });

  it('keeps no task the upstream is done with: ended, or its outputs being copied (no callback follows)', () => {
    const rows = recentRows();
    for (const state of ['storing', 'succeed', 'failed'] as const) rows.keep(task(state, state));
    expect(rows.size).toBe(0);
  });

  it('lets rows go once they are too old, and the oldest when full', async () => {
    const short = recentRows(10, 1);
    short.keep(task('old', 'submitted'));
    await sleep(5);
    short.keep(task('new', 'submitted'));
    expect(short.size).toBe(1);
    expect(short.take('old')).toBeUndefined();
    const full = recentRows(2);
    for (const id of ['a', 'b', 'c']) full.keep(task(id, 'processing'));
    expect(full.size).toBe(2);
    expect(full.take('a')).toBeUndefined();
    expect(full.take('c')).toMatchObject({ id: 'c' });
  });
});
