import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import { startHarness, type Harness } from '../helpers/harness';
import { bearer } from '../helpers/fixtures';
import { startReceiver, type Receiver } from '../helpers/receiver';
import { applyUpstreamUpdate } from '../../src/tasks/upstream-update';
import { finishWebhookRotation, rotateWebhookSecret } from '../../src/tenants/tenants.service';
import { deliverJobOptions } from '../../src/queues/queues';
import { newDeliveryId } from '../../src/webhooks/events';
import { insertQueuedTask } from '../helpers/fixtures';
import { eventually, nothingLeftToSend } from '../helpers/invariants';

let h: Harness;
let rx: Receiver;
let tenant: Awaited<ReturnType<Harness['newTenant']>>;

beforeAll(async () => {
  // The success 300 ms after processing: 30 ms apart (the harness's default), the two callbacks may be
  // applied in either order on a loaded machine, and processing, applied second, is stale (no webhook).
  h = await startHarness({ env: { WEBHOOK_TIMEOUT_MS: '300' }, simulator: { finishAfterMs: 300 } });
});
afterAll(async () => h.close());
beforeEach(async () => {
  await h.reset();
  tenant = await h.newTenant('hooks');
  rx = await startReceiver();
});
afterEach(async () => rx.close());

const createTask = async (body: object = {}) =>
  (
    await request(h.url)
      .post('/v1/images/generations')
      .set(bearer(tenant.api_key))
      .send({ prompt: 'x', callback_url: rx.url, ...body })
  ).body.data.task_id as string;
const deliveries = async (taskId: string, token = tenant.api_key) =>
  request(h.url).get(`/v1/images/generations/${taskId}/deliveries`).set(bearer(token));
type DeliveryRow = Awaited<ReturnType<Harness['api']['db']['webhookDelivery']['findMany']>>[number];
const waitForDeliveries = async (taskId: string, done: (ds: DeliveryRow[]) => boolean) => {
  const until = Date.now() + 15_000;
  for (;;) {
    const ds = await h.api.db.webhookDelivery.findMany({ where: { taskId }, orderBy: { seq: 'asc' } });
    if (ds.length && done(ds)) return ds;
    if (Date.now() > until) throw new Error(`deliveries not as expected: ${JSON.stringify(ds.map((d) => d.status))}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};
/** Verifies with the independent Standard Webhooks package; throws on a bad signature. */
const verify = (secret: string, r: { body: string; headers: Record<string, unknown> }) =>
  new Webhook(secret).verify(r.body, {
    'webhook-id': String(r.headers['webhook-id']),
    'webhook-timestamp': String(r.headers['webhook-timestamp']),
    'webhook-signature': String(r.headers['webhook-signature']),
  });

describe('outgoing webhooks', () => {
  it('delivers every client-visible status change exactly once, in order, signed, with the GET body of the moment', async () => {
    const id = await createTask({ n: 2 });
    await h.waitForTask(id, (t) => t.state === 'succeed');
    const got = await rx.waitFor(2);
    await waitForDeliveries(id, (ds) => ds.every((d) => d.status === 'delivered'));
    expect(got.map((r) => r.json.task_status)).toEqual(['processing', 'succeed']);
    for (const r of got) {
      expect(verify(tenant.webhook_secret, r)).toMatchObject({ task_id: id });
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['user-agent']).toMatch(/kling-tracker/);
    }
    expect(new Set(got.map((r) => r.headers['webhook-id'])).size).toBe(2);
    const now = await request(h.url).get(`/v1/images/generations/${id}`).set(bearer(tenant.api_key));
    expect(got[1].json).toEqual(now.body.data);
    expect((got[1].json.task_result as { images: unknown[] }).images).toHaveLength(2);
    expect((got[0].json.task_result as { images: unknown[] }).images).toHaveLength(0);
    await nothingLeftToSend(h);
    expect(rx.received).toHaveLength(2);
  });

  it('retries a failing receiver with the same webhook-id until it succeeds, recording every attempt', async () => {
    rx.reply = (r, i) => (i < 2 ? { status: 500, body: 'boom '.repeat(400) } : { status: 204 });
    h.sim.faults.loseCallbacks = true;
    const id = await createTask();
    const task = await h.waitForTask(id, (t) => t.state === 'submitted');
    await applyUpstreamUpdate(
      h.api.store,
      id,
      { task_id: task.upstreamTaskId!, task_status: 'failed', task_status_msg: 'nope' },
      'callback',
    );
    const got = await rx.waitFor(3);
    const [d] = await waitForDeliveries(id, (ds) => ds[0].status === 'delivered');
    expect(new Set(got.map((r) => r.headers['webhook-id']))).toEqual(new Set([d.id]));
    got.forEach((r) => verify(tenant.webhook_secret, r));
    const view = (await deliveries(id)).body.data;
    expect(view).toHaveLength(1);
    expect(view[0]).toMatchObject({ webhook_id: d.id, event_type: 'task.failed', status: 'delivered', attempt_count: 3 });
    expect(view[0].attempts.map((a: { http_status: number }) => a.http_status)).toEqual([500, 500, 204]);
    // The receiver is on loopback: what it answered ("boom boom ...") is not recorded (see answerToKeep).
    expect(view[0].attempts.map((a: { response_body: string | null }) => a.response_body)).toEqual([null, null, null]);
    expect(view[0].attempts.every((a: { duration_ms: number }) => Number.isInteger(a.duration_ms) && a.duration_ms >= 0)).toBe(true);
  });

  it('stops retrying on 410 Gone, and still delivers the next status', async () => {
    rx.reply = (r) => (r.json.task_status === 'processing' ? { status: 410 } : { status: 200 });
    const id = await createTask();
    const ds = await waitForDeliveries(id, (all) => all.length === 2 && all.every((d) => d.status !== 'pending'));
    expect(ds.map((d) => [d.eventType, d.status, d.attemptCount])).toEqual([
      ['task.processing', 'gone', 1],
      ['task.succeeded', 'delivered', 1],
    ]);
  });

  it('counts a redirect as a failed attempt and never follows it', async () => {
    const other = await startReceiver();
    try {
      rx.reply = () => ({ status: 302, headers: { location: other.url } });
      const id = await createTask();
      const [d] = await waitForDeliveries(id, (ds) => ds[0].attemptCount >= 2);
      // The target is part of a loopback receiver's answer: not recorded.
      expect(d.lastError).toBe('redirect (HTTP 302) not followed');
      expect(other.received).toHaveLength(0);
    } finally {
      await other.close();
    }
  });

  it('counts a receiver slower than the timeout as a failed attempt', async () => {
    rx.reply = (_r, i) => (i === 0 ? { status: 200, delayMs: 2000 } : { status: 200 });
    const id = await createTask();
    const [d] = await waitForDeliveries(id, (ds) => ds[0].status === 'delivered');
    const attempts = await h.api.db.webhookAttempt.findMany({ where: { deliveryId: d.id }, orderBy: { attempt: 'asc' } });
    expect(attempts[0]).toMatchObject({ httpStatus: null, error: expect.stringMatching(/timed out after 300 ms/) });
    expect(attempts[1].httpStatus).toBe(200);
  });

  it('never delivers a later status before an earlier one still pending', async () => {
    rx.reply = (r, i) => (r.json.task_status === 'processing' && i < 3 ? { status: 503 } : { status: 200 });
    const id = await createTask();
    await waitForDeliveries(id, (ds) => ds.length === 2 && ds.every((d) => d.status === 'delivered'));
    expect(rx.received.map((r) => r.json.task_status)).toEqual(['processing', 'processing', 'processing', 'processing', 'succeed']);
  });

  it('honours Retry-After on 429', async () => {
    rx.reply = (_r, i) => (i === 0 ? { status: 429, headers: { 'retry-after': '30' } } : { status: 200 });
    h.sim.faults.loseCallbacks = true;
    const id = await createTask();
    const task = await h.waitForTask(id, (t) => t.state === 'submitted');
    await applyUpstreamUpdate(h.api.store, id, { task_id: task.upstreamTaskId!, task_status: 'processing' }, 'callback');
    const [d] = await waitForDeliveries(id, (ds) => ds[0].attemptCount === 1);
    const [attempt] = await h.api.db.webhookAttempt.findMany({ where: { deliveryId: d.id } });
    expect(d.status).toBe('pending');
    expect(d.nextAttemptAt!.getTime() - attempt.startedAt.getTime()).toBeGreaterThanOrEqual(30_000);
  });

  it('marks a delivery dead after the last scheduled attempt, and redelivers it on request with the same webhook-id', async () => {
    let healthy = false;
    rx.reply = () => ({ status: healthy ? 200 : 500 });
    h.sim.faults.loseCallbacks = true;
    const id = await createTask();
    const task = await h.waitForTask(id, (t) => t.state === 'submitted');
    await applyUpstreamUpdate(h.api.store, id, { task_id: task.upstreamTaskId!, task_status: 'processing' }, 'callback');
    const [dead] = await waitForDeliveries(id, (ds) => ds[0].status === 'dead');
    expect(dead.attemptCount).toBe(4);
    healthy = true;
    const res = await request(h.url).post(`/v1/images/generations/${id}/deliveries/${dead.id}/redeliver`).set(bearer(tenant.api_key));
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({ webhook_id: dead.id, chain: 2 });
    const [done] = await waitForDeliveries(id, (ds) => ds[0].status === 'delivered');
    expect(done).toMatchObject({ chain: 2, attemptCount: 1 });
    expect(rx.received.map((r) => r.headers['webhook-id'])).toEqual(Array(5).fill(dead.id));
    expect(rx.received[4].body).toBe(rx.received[0].body);
    const again = await request(h.url).post(`/v1/images/generations/${id}/deliveries/nope/redeliver`).set(bearer(tenant.api_key));
    expect([again.status, again.body.code]).toEqual([404, 1203]);
  });

  it('recovers a delivery whose enqueue was lost after the commit, through the sweep', async () => {
    h.sim.faults.loseCallbacks = true;
    const id = await createTask();
    const task = await h.waitForTask(id, (t) => t.state === 'submitted');
    // The store without afterCommit is a process that died right after committing the change.
    await applyUpstreamUpdate({ db: h.api.db }, id, { task_id: task.upstreamTaskId!, task_status: 'succeed' }, 'callback');
    const [d] = await waitForDeliveries(id, (ds) => ds[0].status === 'delivered');
    expect(d.eventType).toBe('task.succeeded');
    expect(rx.received).toHaveLength(1);
  });

  it('signs with both secrets during a rotation, each signature valid on its own', async () => {
    const rotated = await rotateWebhookSecret(h.api.db, h.api.secrets, tenant.id);
    await createTask();
    const [first] = await rx.waitFor(1);
    const sigs = String(first.headers['webhook-signature']).split(' ');
    expect(sigs).toHaveLength(2);
    const only = (sig: string) => ({ ...first, headers: { ...first.headers, 'webhook-signature': sig } });
    expect(() => verify(rotated!.webhook_secret, only(sigs[0]))).not.toThrow();
    expect(() => verify(tenant.webhook_secret, only(sigs[1]))).not.toThrow();
    expect(() => verify(tenant.webhook_secret, only(sigs[0]))).toThrow();
  });

  it('signs with the new secret alone once a rotation is finished, although the old one signed just before', async () => {
    await createTask();
    const [before] = await rx.waitFor(1);
    expect(String(before.headers['webhook-signature']).split(' ')).toHaveLength(1);
    verify(tenant.webhook_secret, before);
    const rotated = await rotateWebhookSecret(h.api.db, h.api.secrets, tenant.id);
    expect(await finishWebhookRotation(h.api.db, tenant.id)).toBe(true);
    await rx.waitFor(2);
    const n = rx.received.length;
    await createTask();
    const [after] = (await rx.waitFor(n + 1)).slice(n);
    expect(String(after.headers['webhook-signature']).split(' ')).toHaveLength(1);
    expect(() => verify(rotated!.webhook_secret, after)).not.toThrow();
    expect(() => verify(tenant.webhook_secret, after)).toThrow();
  });

  it('holds a delivery while an earlier one of its task is pending, and sends it as soon as that one ends', async () => {
    const taskId = await insertQueuedTask(h.api.db, tenant.id, rx.url);
    const add = (seq: number, nextAttemptAt: Date) =>
      h.api.db.webhookDelivery.create({
        data: {
          id: newDeliveryId(),
          taskId,
          tenantId: tenant.id,
          seq,
          eventType: 'task.processing',
          url: rx.url,
          body: `{"seq":${seq}}`,
          nextAttemptAt,
        },
      });
    // The first is due in an hour: the second, due now, must wait for it (re-checking no sooner than that).
    const first = await add(1, new Date(Date.now() + 3_600_000));
    const second = await add(2, new Date());
    const secondJob = deliverJobOptions(second).jobId;
    await h.api.queues.deliver.add('deliver', { deliveryId: second.id }, deliverJobOptions(second));
    // Added without a delay: it is delayed only once a worker has taken it and decided to wait.
    await eventually('the second was put off', async () => (await h.api.queues.deliver.getJobState(secondJob)) === 'delayed', 5_000);
    expect((await h.api.queues.deliver.getJob(secondJob))?.delay).toBeGreaterThan(3_500_000);
    expect(rx.received).toHaveLength(0);
    expect(await h.api.db.webhookDelivery.findUnique({ where: { id: second.id } })).toMatchObject({ status: 'pending', attemptCount: 0 });
    // The first becomes due and is delivered: that ends its turn and lets the second go at once.
    await h.api.db.webhookDelivery.update({ where: { id: first.id }, data: { nextAttemptAt: new Date() } });
    await h.api.queues.deliver.add('deliver', { deliveryId: first.id }, deliverJobOptions(first));
    const got = await rx.waitFor(2, 5_000);
    expect(got.map((r) => r.json.seq)).toEqual([1, 2]);
    await waitForDeliveries(taskId, (ds) => ds.every((d) => d.status === 'delivered'));
  });

  it("shows deliveries only to the task's tenant", async () => {
    const id = await createTask();
    await rx.waitFor(1);
    const bob = await h.newTenant('bob');
    expect((await deliveries(id, bob.api_key)).status).toBe(404);
    const ds = await h.api.db.webhookDelivery.findMany({ where: { taskId: id } });
    const redeliver = await request(h.url).post(`/v1/images/generations/${id}/deliveries/${ds[0].id}/redeliver`).set(bearer(bob.api_key));
    expect(redeliver.status).toBe(404);
  });
});
