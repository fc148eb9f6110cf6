import { Client } from 'pg';
import request from 'supertest';
import { callbacksCongested, markCallbacksCongested } from '../../src/queues/callback-pressure';
import { createProducerConnection } from '../../src/queues/redis-connections';
import { MIN_WINDOW } from '../../src/tasks/submission-window';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { freePort } from '../helpers/processes';

/**
 * Backpressure between the callback route and the submitting workers: the upstream's tasks may
 * finish no faster than their callbacks are absorbed. Slots are never what limits here (a large
 * pool, as with an upstream of unlimited capacity).
 */
const create = (h: Harness, key: string) => request(h.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'x' });

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('backpressure on submissions', () => {
  let h: Harness;
  afterEach(async () => h?.close());

  it('submits no more than the minimum window while an API process says its callbacks are congested, and the rest once they catch up', async () => {
    // Tasks stay at the upstream (no callback comes): what is in flight only grows with submissions.
    h = await startHarness({ simulator: { processingAfterMs: 60_000, finishAfterMs: 60_000 }, env: { UPSTREAM_CONCURRENCY: '1000' } });
    const ids: string[] = [];
    // Marked for a minute and lifted by the test: a mark that lapsed on its own while this process
    // was stalled (a loaded machine) would let the window grow mid-check.
    await markCallbacksCongested(h.api.redis, h.config.QUEUE_PREFIX, 60_000);
    const key = (await h.newTenant()).api_key;
    for (let i = 0; i < 20; i++) ids.push((await create(h, key)).body.data.task_id);
    await until(() => h.sim.createdCount() >= MIN_WINDOW, 'the first submissions');
    // The other jobs run at once (20 at a time) and wait in the window: nothing more reaches the upstream.
    await new Promise((r) => setTimeout(r, 500));
    expect(h.sim.createdCount()).toBe(MIN_WINDOW);
    // The mark ends (replaced by one that lapses at once): the window grows and the rest go.
    await markCallbacksCongested(h.api.redis, h.config.QUEUE_PREFIX, 1);
    for (const id of ids) await h.waitForTask(id, (t) => t.state === 'submitted');
    expect(h.sim.createdCount()).toBe(ids.length);
  });

  it('sheds callbacks past CALLBACK_MAX_IN_FLIGHT at once with 503 and Retry-After, changing nothing, and tells the workers', async () => {
    h = await startHarness({
      simulator: { processingAfterMs: 60_000, finishAfterMs: 60_000 },
      env: { UPSTREAM_CONCURRENCY: '1000', CALLBACK_MAX_IN_FLIGHT: '1', CALLBACK_TARGET_MS: '50' },
    });
    const key = (await h.newTenant()).api_key;
    const id = (await create(h, key)).body.data.task_id;
    const submitted = await h.waitForTask(id, (t) => t.state === 'submitted');
    const upstream = [...h.sim.tasks.values()].find((t) => t.external_task_id === id)!;
    const callback = new URL(upstream.callback_url!);
    const body = (status: string) => ({
      task_id: submitted.upstreamTaskId,
      task_status: status,
      created_at: Date.now(),
      updated_at: Date.now(),
    });

    // A callback held inside its statement (the task's row is locked) is the one in flight.
    const lock = new Client({ connectionString: h.config.DATABASE_URL });
    await lock.connect();
    try {
      await lock.query('BEGIN');
      await lock.query('SELECT id FROM tasks WHERE id = $1 FOR UPDATE', [id]);
      const first = request(h.url)
        .post(callback.pathname)
        .send(body('processing'))
        .then((r) => r);
      await until(
        async () =>
          (
            await lock.query(
              `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted AND a.datname = current_database()`,
            )
          ).rows[0].n > 0,
        'the first callback to wait',
      );
      // Answered at once, or not at all: a callback let in would wait on the lock like the first.
      const shed = await request(h.url).post(callback.pathname).timeout(5000).send(body('succeed'));
      expect(shed.status).toBe(503);
      expect(shed.headers['retry-after']).toBe('1');
      expect(shed.body).toMatchObject({ code: 5001, message: expect.stringContaining('too many callbacks') });
      // The callback in flight is older than its target: the next judgement marks the deployment congested.
      await until(async () => {
        await request(h.url).post(callback.pathname).send(body('succeed'));
        return callbacksCongested(h.api.redis, h.config.QUEUE_PREFIX);
      }, 'the congestion mark');
      await lock.query('COMMIT');
      expect((await first).status).toBe(200);
    } finally {
      await lock.end();
    }
    // Only the callback that was let in applied; the shed ones changed nothing.
    const task = await h.api.db.task.findUniqueOrThrow({ where: { id } });
    expect(task.state).toBe('processing');
    expect(await h.api.db.taskEvent.count({ where: { taskId: id, toState: 'succeed' } })).toBe(0);
  });

  it('marks the deployment congested when many callbacks wait past CALLBACK_TARGET_MS, and not for one slow callback', async () => {
    h = await startHarness({
      simulator: { processingAfterMs: 60_000, finishAfterMs: 60_000 },
      env: { UPSTREAM_CONCURRENCY: '1000', CALLBACK_TARGET_MS: '50' },
    });
    const key = (await h.newTenant()).api_key;
    const [slow, quick] = await Promise.all([create(h, key), create(h, key)]).then((rs) => rs.map((r) => r.body.data.task_id as string));
    const callbackOf = async (id: string) => {
      const task = await h.waitForTask(id, (t) => t.state === 'submitted');
      const path = new URL([...h.sim.tasks.values()].find((t) => t.external_task_id === id)!.callback_url!).pathname;
      return () =>
        request(h.url)
          .post(path)
          .send({ task_id: task.upstreamTaskId, task_status: 'processing', created_at: Date.now(), updated_at: Date.now() })
          .then((r) => r.status);
    };
    const [callSlow, callQuick] = [await callbackOf(slow), await callbackOf(quick)];
    const lock = new Client({ connectionString: h.config.DATABASE_URL });
    await lock.connect();
    const blocked = () =>
      lock
        .query(
          `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted AND a.datname = current_database()`,
        )
        .then((r) => r.rows[0].n as number);
    try {
      await lock.query('BEGIN');
      await lock.query('SELECT id FROM tasks WHERE id = $1 FOR UPDATE', [slow]);
      const held = [callSlow()];
      await until(async () => (await blocked()) >= 1, 'the slow callback to wait');
      // One callback far past its target, others quick: not congestion.
      for (let i = 0; i < 5; i++) {
        expect(await callQuick()).toBe(200);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await callbacksCongested(h.api.redis, h.config.QUEUE_PREFIX)).toBe(false);
      // Many waiting past their target: congestion, told to the workers.
      for (let i = 0; i < 9; i++) held.push(callSlow());
      await until(async () => {
        await callQuick();
        return callbacksCongested(h.api.redis, h.config.QUEUE_PREFIX);
      }, 'the congestion mark');
      await lock.query('COMMIT');
      expect(await Promise.all(held)).toEqual(held.map(() => 200));
    } finally {
      await lock.end();
    }
  });
  it('marks the deployment congested when callbacks arrive late by the upstream clock, though each is handled at once, and not for one late callback', async () => {
    h = await startHarness({
      simulator: { processingAfterMs: 60_000, finishAfterMs: 60_000 },
      env: { UPSTREAM_CONCURRENCY: '1000', CALLBACK_TARGET_MS: '5000' },
    });
    const key = (await h.newTenant()).api_key;
    const ids = await Promise.all(Array.from({ length: 6 }, () => create(h, key))).then((rs) =>
      rs.map((r) => r.body.data.task_id as string),
    );
    // Each callback is handled at once; only the upstream's `updated_at` says how long it took to arrive.
    const callbacks = await Promise.all(
      ids.map(async (id) => {
        const task = await h.waitForTask(id, (t) => t.state === 'submitted');
        const path = new URL([...h.sim.tasks.values()].find((t) => t.external_task_id === id)!.callback_url!).pathname;
        return (lateMs: number) =>
          request(h.url)
            .post(path)
            .send({ task_id: task.upstreamTaskId, task_status: 'processing', created_at: Date.now(), updated_at: Date.now() - lateMs })
            .then((r) => r.status);
      }),
    );
    const tick = () => new Promise((r) => setTimeout(r, 150));
    // On time: the base delay. Then, round after round, one callback 30 s late among timely ones (an
    // old one retried): not congestion.
    expect(await callbacks[0](0)).toBe(200);
    for (let round = 0; round < 5; round++) {
      await tick();
      expect(await Promise.all(callbacks.map((call, i) => call(i === round ? 30_000 : 0)))).toEqual(callbacks.map(() => 200));
      expect(await callbacksCongested(h.api.redis, h.config.QUEUE_PREFIX)).toBe(false);
    }
    // Every callback 30 s late (past the 5 s target however slow this machine is): they queue before this process sees them.
    await until(async () => {
      await tick();
      expect(await Promise.all(callbacks.map((call) => call(30_000)))).toEqual(callbacks.map(() => 200));
      return callbacksCongested(h.api.redis, h.config.QUEUE_PREFIX);
    }, 'the congestion mark');
  });
});

describe('the congestion mark', () => {
  it('cannot be read without Redis: the read fails rather than say the callbacks keep up', async () => {
    // A producer connection (no offline queue) to a port nothing listens on: Redis down.
    const redis = createProducerConnection({ url: `redis://127.0.0.1:${await freePort()}`, cluster: false });
    redis.on('error', () => undefined);
    try {
      await expect(callbacksCongested(redis, 'kt-test')).rejects.toThrow();
    } finally {
      redis.disconnect();
    }
  });
});
