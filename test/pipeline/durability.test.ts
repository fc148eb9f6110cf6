import request from 'supertest';
import { startHarness, type Harness } from '../helpers/harness';
import { bearer, insertQueuedTask } from '../helpers/fixtures';
import { submitJobId } from '../../src/queues/queues';

describe('durable before async', () => {
  let h: Harness;
  afterEach(async () => h?.close());

  it('accepts a task while the API cannot reach Redis, and the sweep submits it later', async () => {
    // The API's Redis is a closed port; the workers' Redis is the real one.
    h = await startHarness({ apiEnv: { REDIS_URL: 'redis://127.0.0.1:1' } });
    const key = (await h.newTenant()).api_key;
    const res = await request(h.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'x' });
    expect(res.status).toBe(200);
    const id = res.body.data.task_id;
    const ready = await request(h.url).get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.data).toEqual({ postgres: 'ok', redis: 'down', workers: 'down' });
    const status = await request(h.url).get(`/v1/images/generations/${id}`).set(bearer(key));
    expect([status.status, status.body.code, status.body.data.task_id]).toEqual([200, 0, id]);
    await h.waitForTask(id, (t) => t.state === 'succeed');
    expect(h.sim.createdCount()).toBe(1);
  });

  it('recovers a task whose enqueue was lost (committed, never enqueued) through the sweep', async () => {
    h = await startHarness();
    const tenant = await h.newTenant();
    // A crash between commit and enqueue: the row exactly as createTask commits it, and no job.
    const id = await insertQueuedTask(h.api.db, tenant.id);
    expect(await h.api.queues.submit.getJob(submitJobId(id))).toBeUndefined();
    await h.waitForTask(id, (t) => t.state === 'succeed');
    expect(h.sim.createdCount()).toBe(1);
  });
});

describe('exactly one upstream task per local task', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ workers: false });
  });
  afterAll(async () => h.close());

  it('adopts the upstream task of an attempt that died after the HTTP call, instead of creating a second one', async () => {
    const key = (await h.newTenant()).api_key;
    const id = (await request(h.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'x' })).body.data.task_id;
    // The earlier attempt: counted, sent upstream, then the process died before recording the answer.
    await h.api.db.task.update({ where: { id }, data: { submitAttempts: 1 } });
    const upstream = await fetch(`${h.config.KLING_BASE_URL!}/v1/images/generations`, {
      method: 'POST',
      headers: { authorization: 'Bearer sim-upstream-key', 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'x', external_task_id: id }),
    }).then((r) => r.json() as Promise<{ data: { task_id: string } }>);
    expect(h.sim.createdCount()).toBe(1);

    const { startService } = await import('../../src/service');
    const { createLogger } = await import('../../src/logger');
    const worker = await startService({ ...h.config, ROLE: 'worker' }, createLogger('silent'), h.config.KLING_BASE_URL!);
    try {
      const task = await h.waitForTask(id, (t) => t.upstreamTaskId !== null);
      expect(task.upstreamTaskId).toBe(upstream.data.task_id);
      expect(h.sim.createdCount()).toBe(1);
      expect(task.submitAttempts).toBe(1);
    } finally {
      await worker.close();
    }
  });
});
