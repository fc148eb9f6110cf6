import request from 'supertest';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';

const ADMIN = 'admin-token-for-tests-0123456789';

/** One Prometheus sample's value, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name && want.every((w) => (m[2] ?? '').includes(w))) return Number(m[3]);
  }
  return undefined;
}

describe('operator endpoints', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ env: { ADMIN_TOKEN: ADMIN } });
  });
  afterAll(async () => h.close());

  it('keeps /metrics and /admin/queues behind ADMIN_TOKEN (bearer, or basic auth for browsers)', async () => {
    const anon = await request(h.url).get('/metrics');
    expect(anon.status).toBe(401);
    expect(anon.headers['www-authenticate']).toMatch(/^Basic/);
    expect((await request(h.url).get('/metrics').set(bearer('wrong-token-wrong-token'))).status).toBe(401);
    expect((await request(h.url).get('/metrics').set(bearer(ADMIN))).status).toBe(200);
    const page = await request(h.url).get('/admin/queues').auth('admin', ADMIN);
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/<html/i);
    const api = await request(h.url).get('/admin/queues/api/queues').auth('admin', ADMIN);
    expect(api.body.queues.map((q: { name: string }) => q.name).sort()).toEqual([
      'result.store',
      'task.maintenance',
      'task.submit',
      'webhook.deliver',
    ]);
  });

  it('exposes metrics that agree with the database', async () => {
    const key = (await h.newTenant()).api_key;
    h.sim.faults.failRate = 0.5;
    const ids: string[] = [];
    for (let i = 0; i < 6; i++)
      ids.push(
        (
          await request(h.url)
            .post('/v1/images/generations')
            .set(bearer(key))
            .send({ prompt: `m${i}` })
        ).body.data.task_id,
      );
    for (const id of ids) await h.waitForTask(id, (t) => t.state === 'succeed' || t.state === 'failed');
    const text = (await request(h.url).get('/metrics').set(bearer(ADMIN))).text;
    const succeeded = await h.api.db.task.count({ where: { state: 'succeed' } });
    const failed = await h.api.db.task.count({ where: { state: 'failed' } });
    expect(sample(text, 'kt_tasks', { state: 'succeed' }) ?? 0).toBe(succeeded);
    expect(sample(text, 'kt_tasks', { state: 'failed' }) ?? 0).toBe(failed);
    expect(sample(text, 'kt_tasks_terminal', { status: 'failed', reason: 'upstream_failed' }) ?? 0).toBe(failed);
    expect(sample(text, 'kt_upstream_slots_in_use')).toBe(0);
    expect(sample(text, 'kt_tasks_created_total')).toBeGreaterThanOrEqual(6);
    expect(sample(text, 'kt_upstream_requests_total', { op: 'create', outcome: 'ok' })).toBeGreaterThanOrEqual(6);
    expect(sample(text, 'kt_callbacks_received_total', { outcome: 'applied' })).toBeGreaterThan(0);
    expect(sample(text, 'kt_queue_jobs', { queue: 'task.submit', state: 'waiting' })).toBeDefined();
    expect(sample(text, 'kt_queue_oldest_waiting_seconds', { queue: 'webhook.deliver' })).toBeDefined();
    expect(text).toMatch(/kt_task_duration_seconds_bucket/);
    expect(text).toMatch(/kt_upstream_request_duration_seconds_bucket/);
  });

  it('says ready only when Postgres, Redis and a worker heartbeat are all there', async () => {
    const ready = await request(h.url).get('/readyz');
    expect([ready.status, ready.body.data]).toEqual([200, { postgres: 'ok', redis: 'ok', workers: 'ok' }]);
    const lonely = await startHarness({ workers: false });
    try {
      const res = await request(lonely.url).get('/readyz');
      expect([res.status, res.body.data.workers]).toEqual([503, 'down']);
    } finally {
      await lonely.close();
    }
  });
});

describe('without ADMIN_TOKEN', () => {
  it('answers 404 for /metrics and /admin/queues', async () => {
    const h = await startHarness({ workers: false });
    try {
      expect((await request(h.url).get('/metrics')).status).toBe(404);
      expect((await request(h.url).get('/admin/queues')).status).toBe(404);
    } finally {
      await h.close();
    }
  });
});
