import request from 'supertest';
import { callbackPath } from '../../src/callbacks/callback-token';
import { withSaneTimes } from '../../src/kinds/upstream-task';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { capturingLogger } from '../helpers/log-capture';

/**
 * Upstream timestamps are Unix milliseconds, trusted only inside a sane window: one far in the
 * future would make every later update look stale, one past Postgres's bigint would fail the write.
 */
describe('upstream created_at / updated_at outside 2020..now+1 day', () => {
  let h: Harness;
  const { logger, lines: logLines } = capturingLogger();
  beforeAll(async () => {
    h = await startHarness({ logger, simulator: { processingAfterMs: 600_000 } });
  });
  afterAll(async () => h.close());

  it('are ignored with an ALERT, never a 5xx, and later updates still apply', async () => {
    h.sim.faults.loseCallbacks = true;
    const key = (await h.newTenant()).api_key;
    const id = (await request(h.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'x' })).body.data.task_id;
    const task = await h.waitForTask(id, (t) => t.state === 'submitted');
    const url = callbackPath(id, h.api.callbackTokens.forTask(id));
    const known = task.upstreamUpdatedAt;

    const far = await request(h.url)
      .post(url)
      .send({ task_id: task.upstreamTaskId, task_status: 'processing', updated_at: 1e30, created_at: -5 });
    expect([far.status, far.body.data.applied]).toEqual([200, true]);
    const after = await h.api.db.task.findUniqueOrThrow({ where: { id } });
    // The status is news; the times are not taken.
    expect({ state: after.state, updatedAt: after.upstreamUpdatedAt, createdAt: after.upstreamCreatedAt }).toEqual({
      state: 'processing',
      updatedAt: known,
      createdAt: task.upstreamCreatedAt,
    });
    const alert = logLines.map((l) => JSON.parse(l)).find((l) => l.task_id === id && /^ALERT: upstream timestamps outside/.test(l.msg));
    expect(alert).toMatchObject({ level: 40, source: 'callback', ignored: ['created_at=-5', 'updated_at=1e+30'] });

    // A day ahead is garbage too; the next real update is not taken for stale.
    await request(h.url)
      .post(url)
      .send({ task_id: task.upstreamTaskId, task_status: 'processing', updated_at: Date.now() + 2 * 86_400_000 })
      .expect(200);
    const done = await request(h.url)
      .post(url)
      .send({
        task_id: task.upstreamTaskId,
        task_status: 'succeed',
        updated_at: Date.now(),
        task_result: { images: [{ index: 0, url: 'https://img.example/0.png' }] },
      });
    expect([done.status, done.body.data.applied]).toEqual([200, true]);
    expect((await h.api.db.task.findUniqueOrThrow({ where: { id } })).state).toBe('succeed');
  });

  it('drops exactly the values outside the window', () => {
    const now = Date.UTC(2026, 0, 1);
    const base = { task_id: 't', task_status: 'processing' };
    expect(withSaneTimes({ ...base, created_at: Date.UTC(2020, 0, 1), updated_at: now + 86_400_000 }, now).ignored).toEqual([]);
    const out = withSaneTimes({ ...base, created_at: Date.UTC(2019, 11, 31, 23, 59), updated_at: now + 86_400_001 }, now);
    expect(out.ignored).toEqual([`created_at=${Date.UTC(2019, 11, 31, 23, 59)}`, `updated_at=${now + 86_400_001}`]);
    expect(out.task).toEqual(base);
    // Seconds instead of milliseconds are before 2020 in milliseconds.
    expect(withSaneTimes({ ...base, updated_at: 1_767_225_600 }, now).ignored).toEqual(['updated_at=1767225600']);
  });
});
