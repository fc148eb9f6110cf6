import request from 'supertest';
import { createLogger } from '../../src/logger';
import { metrics } from '../../src/observability/metrics';
import { deliverJobId } from '../../src/queues/queues';
import { failTask } from '../../src/tasks/end-task';
import { createInlineDeliveries } from '../../src/webhooks/delivery-attempt';
import { sweepDueDeliveries } from '../../workers/sweep-lost-jobs';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { eventually } from '../helpers/invariants';
import { startReceiver, type Receiver } from '../helpers/receiver';
import { counted } from '../helpers/metrics';

/**
 * The first attempt of a webhook is sent by the process that committed the status change, not
 * through a queue job; retries, ordering waits and crashes still go through the queue and the sweep.
 */
describe('first webhook attempts sent inline', () => {
  let h: Harness;
  let rx: Receiver;
  beforeAll(async () => {
    // No worker process: whatever arrives was sent by the API process itself.
    h = await startHarness({ workers: false, env: { WEBHOOK_TIMEOUT_MS: '3000' } });
    rx = await startReceiver();
  });
  afterAll(async () => {
    await rx.close();
    await h.close();
  });

  const createAndCancel = async () => {
    const key = (await h.newTenant()).api_key;
    const id = (await request(h.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'x', callback_url: rx.url })).body.data
      .task_id as string;
    await request(h.url).post(`/v1/images/generations/${id}/cancel`).set(bearer(key)).expect(200);
    return id;
  };

  it('delivers a status change without any queue job, and records the attempt', async () => {
    rx.received.length = 0;
    rx.reply = () => ({ status: 200 });
    const id = await createAndCancel();
    const [got] = await rx.waitFor(1, 5000);
    expect(got.json).toMatchObject({ task_id: id, task_status: 'failed' });
    await expect(h.api.queues.deliver.count()).resolves.toBe(0);
    const d = await h.api.db.webhookDelivery.findFirstOrThrow({ where: { taskId: id }, include: { attempts: true } });
    expect(d.status).toBe('delivered');
    expect(d.attempts.map((a) => [a.attempt, a.httpStatus])).toEqual([[1, 200]]);
    expect(got.headers['webhook-id']).toBe(d.id);
  });

  it('leases the first attempt while it is being sent, so the sweep does not send it twice', async () => {
    rx.received.length = 0;
    rx.reply = () => ({ status: 200, delayMs: 800 });
    const id = await createAndCancel();
    const d = await h.api.db.webhookDelivery.findFirstOrThrow({ where: { taskId: id } });
    // Due only after the webhook timeout plus a margin: a dead sender's delivery is then swept.
    expect(d.nextAttemptAt!.getTime() - d.createdAt.getTime()).toBe(3000 + 5000);
    await rx.waitFor(1, 5000);
    // A sweep while the receiver holds its answer, as eager as one can be (no minimum age): the
    // delivery is pending but leased, so it re-enqueues nothing.
    expect(await sweepDueDeliveries({ db: h.api.db, queues: h.api.queues, log: createLogger('silent'), minAgeMs: 0 })).toBe(0);
    expect(await h.api.queues.deliver.count()).toBe(0);
    await eventually(
      'the inline send is recorded',
      async () => (await h.api.db.webhookDelivery.findUniqueOrThrow({ where: { id: d.id } })).status === 'delivered',
      5000,
    );
    expect(rx.received).toHaveLength(1);
  });

  it('hands a failed first attempt to the queue for its retry', async () => {
    rx.received.length = 0;
    rx.reply = () => ({ status: 500 });
    const id = await createAndCancel();
    await rx.waitFor(1, 5000);
    const d = await h.api.db.webhookDelivery.findFirstOrThrow({ where: { taskId: id } });
    // The retry is a job of the deliver queue (run by workers, none here), added once the attempt is recorded.
    const retry = deliverJobId({ id: d.id, chain: 1, attemptCount: 1 });
    await eventually('the retry is queued', async () => (await h.api.queues.deliver.getJobState(retry)) !== 'unknown', 5000);
    expect(await h.api.queues.deliver.getJobState(retry)).toMatch(/^(delayed|waiting)$/);
    const after = await h.api.db.webhookDelivery.findUniqueOrThrow({ where: { id: d.id } });
    expect([after.status, after.attemptCount]).toEqual(['pending', 1]);
  });
});

describe('inline sends of one task, in order', () => {
  let h: Harness;
  let rx: Receiver;
  beforeAll(async () => {
    h = await startHarness({ workers: false });
    rx = await startReceiver();
  });
  afterAll(async () => {
    await rx.close();
    await h.close();
  });

  /** A task with two status changes recorded back to back by this API process (upstream callbacks). */
  const twoChanges = async () => {
    const key = (await h.newTenant()).api_key;
    const id = (await request(h.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'x', callback_url: rx.url })).body.data
      .task_id as string;
    // As the submission would have recorded it: a callback for a task without one is confirmed upstream first.
    await h.api.db.task.update({ where: { id }, data: { upstreamTaskId: 'up-1' } });
    const url = `/callbacks/kling/${id}/${h.api.callbackTokens.forTask(id)}`;
    await request(h.url).post(url).send({ task_id: 'up-1', task_status: 'processing' }).expect(200);
    await request(h.url)
      .post(url)
      .send({ task_id: 'up-1', task_status: 'succeed', task_result: { images: [{ index: 0, url: 'https://x/1.png' }] } })
      .expect(200);
    return h.api.db.webhookDelivery.findMany({ where: { taskId: id }, orderBy: { seq: 'asc' } });
  };

  it('sends a change after the earlier one still being sent, in order, without a queue job', async () => {
    rx.received.length = 0;
    rx.reply = (r) => (r.json.task_status === 'processing' ? { status: 200, delayMs: 300 } : { status: 200 });
    const [first, second] = await twoChanges();
    // The second is leased to this process while it waits for the first.
    expect(second.nextAttemptAt!.getTime()).toBeGreaterThan(second.createdAt.getTime());
    const got = await rx.waitFor(2, 5000);
    expect(got.map((r) => r.json.task_status)).toEqual(['processing', 'succeed']);
    expect(got.map((r) => r.headers['webhook-id'])).toEqual([first.id, second.id]);
    expect(await h.api.queues.deliver.count()).toBe(0);
  });

  it('hands the later change to the queue, due at once, when the earlier one has to be retried', async () => {
    rx.received.length = 0;
    rx.reply = (r) => (r.json.task_status === 'processing' ? { status: 503, delayMs: 200 } : { status: 200 });
    const [first, second] = await twoChanges();
    await rx.waitFor(1, 5000);
    await eventually(
      'the later change is queued',
      async () => (await h.api.queues.deliver.getJobState(`deliver-${second.id}-1-0`)) !== 'unknown',
      3000,
    );
    const after = await h.api.db.webhookDelivery.findUniqueOrThrow({ where: { id: second.id } });
    expect([after.status, after.attemptCount]).toEqual(['pending', 0]);
    expect(after.nextAttemptAt!.getTime()).toBeLessThanOrEqual(Date.now());
    // Nothing of the later one went out before the earlier one was delivered.
    expect(rx.received.map((r) => r.json.task_status)).toEqual(['processing']);
    expect((await h.api.db.webhookDelivery.findUniqueOrThrow({ where: { id: first.id } })).status).toBe('pending');
  });
});

describe('deliveries without an inline place', () => {
  it('are due at once and handed to the queue by the commit hook', async () => {
    const h = await startHarness({ workers: false });
    // Every inline place taken, as under a burst of slow receivers: the change must use the queue.
    const inline = h.api.store.inline!;
    let taken = 0;
    while (inline.reserve()) taken++;
    try {
      const key = (await h.newTenant()).api_key;
      const id = (
        await request(h.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'x', callback_url: 'http://127.0.0.1:9/hook' })
      ).body.data.task_id as string;
      const ended = await failTask(h.api.store, id, 'test', 'ended by the test', 'api');
      expect(ended?.state).toBe('failed');
      const d = await h.api.db.webhookDelivery.findFirstOrThrow({ where: { taskId: id } });
      expect([d.status, d.eventType, d.nextAttemptAt!.getTime()]).toEqual(['pending', 'task.failed', d.createdAt.getTime()]);
      // The job the commit hook added to Redis (no worker runs here to take it).
      const job = await h.api.queues.deliver.getJob(deliverJobId({ id: d.id, chain: 1, attemptCount: 0 }));
      expect(job?.data).toEqual({ deliveryId: d.id });
      expect(await job?.getState()).toBe('waiting');
      expect(await h.api.queues.deliver.count()).toBe(1);
    } finally {
      for (; taken > 0; taken--) inline.release();
      await h.close();
    }
  });
});

describe('inline sends are bounded', () => {
  it('refuses a place past the maximum in flight, counts the refusal, and gives the place back', async () => {
    const inline = createInlineDeliveries(
      {
        db: null as never,
        queues: null as never,
        log: createLogger('silent'),
        openWebhookSecrets: (_tenantId, sealed) => sealed,
        webhooks: { schedule: [0], timeoutMs: 1000, allowPrivate: true },
      },
      2,
    );
    const full = () => counted(metrics.webhookInlineFull);
    const before = await full();
    expect([inline.reserve(), inline.reserve(), inline.reserve()]).toEqual([true, true, false]);
    expect(await full()).toBe(before + 1);
    inline.release();
    expect(inline.reserve()).toBe(true);
    expect(inline.leaseMs).toBe(6000);
  });
});
