import { createBatch } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { eventually, expectAllSettled } from '../helpers/invariants';
import { startProcess, type Proc } from '../helpers/processes';
import { startReceiver, type Receiver } from '../helpers/receiver';

/** An upstream that misbehaves while a separate worker process does the work. */
jest.setTimeout(120_000);

let h: Harness;
let rx: Receiver;
let worker: Proc;

beforeEach(async () => {
  h = await startHarness({
    workers: false,
    simulator: { processingAfterMs: 50, finishAfterMs: 80 },
    env: { UPSTREAM_POLL_AFTER_MS: '300', RECONCILE_INTERVAL_MS: '100', KLING_TIMEOUT_MS: '300', SUBMIT_BACKOFF_MS: '50' },
  });
  rx = await startReceiver();
  worker = await startProcess({ ...h.env, ROLE: 'worker' }, /workers started/);
});
afterEach(async () => {
  await worker.kill('SIGKILL');
  await rx.close();
  await h.close();
});

describe('upstream faults', () => {
  it("loses every callback of a batch: polling brings every task to the upstream's end", async () => {
    h.sim.faults.loseCallbacks = true;
    h.sim.faults.failRate = 0.3;
    const ids = await createBatch(h, 12, rx.url);
    await expectAllSettled(h, ids, rx);
    expect(h.sim.callbacks.filter((c) => c.ok)).toHaveLength(0);
  });

  it('duplicates and reorders callbacks: no task goes backwards, no event is told twice', async () => {
    h.sim.faults.duplicateCallbacks = true;
    h.sim.faults.reorderCallbacks = true;
    const ids = await createBatch(h, 12, rx.url);
    await expectAllSettled(h, ids, rx);
    const events = await h.api.db.taskEvent.groupBy({ by: ['taskId', 'toState'], where: { taskId: { in: ids } }, _count: true });
    expect(events.every((e) => e._count === 1)).toBe(true);
  });

  it('answers 1303 and 5000 for a while: tasks wait and retry, none fails, one upstream task each', async () => {
    for (let i = 0; i < 8; i++)
      h.sim.faults.createErrors.push(
        i % 2 ? { http: 500, code: 5000, message: 'internal error' } : { http: 429, code: 1303, message: 'concurrency limit' },
      );
    const ids = await createBatch(h, 10, rx.url);
    await expectAllSettled(h, ids, rx);
    expect(await h.api.db.task.count({ where: { id: { in: ids }, state: 'failed' } })).toBe(0);
    expect(h.sim.faults.createErrors).toHaveLength(0);
  });

  it('hangs for a while: timed-out submissions that did reach it are adopted, never created twice', async () => {
    h.sim.faults.hang = true;
    const ids = await createBatch(h, 6, rx.url);
    // Every create reached the upstream and timed out, and its retry is asking whether it exists.
    const retried = (id: string) => {
      const create = h.sim.received.findIndex(
        (r) => r.method === 'POST' && (r.body as { external_task_id?: string }).external_task_id === id,
      );
      return create >= 0 && h.sim.received.slice(create + 1).some((r) => r.method === 'GET' && r.path.endsWith(`/${id}`));
    };
    await eventually('every submission timed out and was retried', async () => ids.every(retried), 20_000);
    expect(h.sim.createdCount()).toBe(0);
    h.sim.faults.hang = false;
    await expectAllSettled(h, ids, rx);
    expect(h.sim.createdCount()).toBe(ids.length);
  });
});
