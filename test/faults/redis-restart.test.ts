import request from 'supertest';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { eventually, expectAllSettled } from '../helpers/invariants';
import { freePort, startProcess, startRedis, type Proc } from '../helpers/processes';
import { startReceiver, type Receiver } from '../helpers/receiver';

/**
 * Redis stopped and restarted under load. A private redis-server (no persistence: it comes back
 * empty, the worst case) so the machine's Redis keeps serving the other test files.
 */
jest.setTimeout(120_000);

let h: Harness;
let rx: Receiver;
let redis: Proc;
let worker: Proc;
let port: number;

beforeAll(async () => {
  port = await freePort();
  redis = await startRedis(port);
  h = await startHarness({
    workers: false,
    simulator: { processingAfterMs: 100, finishAfterMs: 100 },
    env: { REDIS_URL: `redis://127.0.0.1:${port}`, UPSTREAM_POLL_AFTER_MS: '500', RECONCILE_INTERVAL_MS: '200' },
  });
  rx = await startReceiver();
  worker = await startProcess({ ...h.env, ROLE: 'worker' }, /workers started/);
});
afterAll(async () => {
  await worker.kill('SIGKILL');
  await rx.close();
  await h.close();
  await redis.kill('SIGKILL');
});

describe('Redis stopped and restarted under load', () => {
  it('keeps accepting and answering, then finishes every task with its webhooks', async () => {
    const key = (await h.newTenant()).api_key;
    const create = async (i: number) => {
      const res = await request(h.url)
        .post('/v1/images/generations')
        .set(bearer(key))
        .send({ prompt: `p${i}`, callback_url: rx.url });
      expect(res.status).toBe(200);
      return res.body.data.task_id as string;
    };
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push(await create(i));

    await redis.kill('SIGKILL');
    await eventually('the API notices', async () => (await request(h.url).get('/readyz')).status === 503, 10_000);
    // Down: tasks are still accepted and readable.
    for (let i = 8; i < 14; i++) ids.push(await create(i));
    const status = await request(h.url).get(`/v1/images/generations/${ids[9]}`).set(bearer(key));
    expect([status.status, status.body.data.task_status]).toEqual([200, 'submitted']);

    redis = await startRedis(port);
    await eventually('the API reconnects', async () => (await request(h.url).get('/readyz')).status === 200, 20_000);
    for (let i = 14; i < 18; i++) ids.push(await create(i));
    await expectAllSettled(h, ids, rx);
  });
});
