import request from 'supertest';
import { sealContext } from '../../src/tenants/secret-box';
import type { Task } from '../../src/db/client';
import { bearer, pngBase64 } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { capturingLogger } from '../helpers/log-capture';
import { startReceiver, type Receiver } from '../helpers/receiver';

let h: Harness;
let rx: Receiver;
let alice: Awaited<ReturnType<Harness['newTenant']>>;
let bob: Awaited<ReturnType<Harness['newTenant']>>;
let taskId: string;
/** Alice's second task, held at the upstream (processing) for the whole file: cancel still acts on it. */
let liveId: string;
let liveBefore: Task;
let liveEventsBefore: string[];
let deliveryId: string;
let createRequestId: string;
const { logger, lines: logLines } = capturingLogger('debug');

beforeAll(async () => {
  // Upstream tasks stay processing until the test ends them: a task can be kept in flight.
  h = await startHarness({ logger, simulator: { finishAfterMs: 600_000 } });
  rx = await startReceiver();
  alice = await h.newTenant('alice');
  bob = await h.newTenant('bob');
  const res = await request(h.url)
    .post('/v1/images/generations')
    .set(bearer(alice.api_key))
    .send({ prompt: 'secret prompt', external_task_id: 'alice-ext', callback_url: rx.url, image: pngBase64(400, 400) });
  taskId = res.body.data.task_id;
  createRequestId = res.body.request_id;
  expect(res.headers['x-request-id']).toBe(createRequestId);
  const processing = await h.waitForTask(taskId, (t) => t.state === 'processing');
  h.sim.setTaskStatus(processing.upstreamTaskId!, 'succeed');
  await h.waitForTask(taskId, (t) => t.state === 'succeed');
  await rx.waitFor(2);
  deliveryId = (await h.api.db.webhookDelivery.findFirstOrThrow({ where: { taskId } })).id;
  const live = await request(h.url)
    .post('/v1/images/generations')
    .set(bearer(alice.api_key))
    .send({ prompt: 'secret prompt', external_task_id: 'alice-live' });
  liveId = live.body.data.task_id;
  liveBefore = await h.waitForTask(liveId, (t) => t.state === 'processing');
  liveEventsBefore = await eventStates(liveId);
});
afterAll(async () => {
  await rx.close();
  await h.close();
});

const eventStates = async (id: string) =>
  (await h.api.db.taskEvent.findMany({ where: { taskId: id }, orderBy: { seq: 'asc' } })).map((e) => `${e.seq}:${e.toState}`);

describe("tenant isolation: tenant B with tenant A's ids, on every endpoint", () => {
  const matrix: [string, () => request.Test][] = [
    ['GET by task_id', () => request(h.url).get(`/v1/images/generations/${taskId}`)],
    ['GET by external_task_id', () => request(h.url).get('/v1/images/generations/alice-ext')],
    ['GET ?external_task_id=', () => request(h.url).get('/v1/images/generations?external_task_id=alice-ext')],
    // On a task in flight: a finished one ignores cancel from anyone, so it would prove nothing.
    ['POST cancel', () => request(h.url).post(`/v1/images/generations/${liveId}/cancel`)],
    ['POST cancel by external_task_id', () => request(h.url).post('/v1/images/generations/alice-live/cancel')],
    ['GET deliveries', () => request(h.url).get(`/v1/images/generations/${taskId}/deliveries`)],
    ['POST redeliver', () => request(h.url).post(`/v1/images/generations/${taskId}/deliveries/${deliveryId}/redeliver`)],
  ];

  it.each(matrix)('%s answers 404/1203 and reveals nothing', async (_name, call) => {
    const res = await call().set(bearer(bob.api_key));
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ code: 1203, message: expect.any(String), request_id: expect.any(String) });
    expect(JSON.stringify(res.body)).not.toContain('secret prompt');
  });

  it("lists only the tenant's own tasks", async () => {
    const res = await request(h.url).get('/v1/images/generations').set(bearer(bob.api_key));
    expect(res.body.data).toEqual([]);
  });

  it("leaves A's tasks untouched by all of B's attempts", async () => {
    const t = await h.api.db.task.findUniqueOrThrow({ where: { id: taskId } });
    expect(t.state).toBe('succeed');
    expect(await h.api.db.webhookDelivery.count({ where: { taskId, chain: { gt: 1 } } })).toBe(0);
    const live = await h.api.db.task.findUniqueOrThrow({ where: { id: liveId } });
    expect(live).toMatchObject({ state: 'processing', cancelRequestedAt: null, failureReason: null });
    expect(live).toEqual(liveBefore);
    expect(await eventStates(liveId)).toEqual(liveEventsBefore);
  });

  it('lets a duplicate external_task_id of another tenant exist without crossing over', async () => {
    const own = await request(h.url)
      .post('/v1/images/generations')
      .set(bearer(bob.api_key))
      .send({ prompt: 'b', external_task_id: 'alice-ext' });
    expect(own.status).toBe(200);
    const got = await request(h.url).get('/v1/images/generations/alice-ext').set(bearer(bob.api_key));
    expect(got.body.data.task_id).toBe(own.body.data.task_id);
  });
});

describe('hardened endpoints', () => {
  it('sends security headers on every answer', async () => {
    const res = await request(h.url).get('/healthz');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBeDefined();
    expect(res.headers['x-powered-by']).toBeUndefined();
  });

  it('keeps no usable credential in the database', async () => {
    const row = await h.api.db.tenant.findUniqueOrThrow({ where: { id: alice.id } });
    const dump = JSON.stringify(row);
    for (const secret of [alice.api_key, alice.secret_key, alice.webhook_secret]) expect(dump).not.toContain(secret);
    expect(row.secretKey).toMatch(/^v2:/);
    expect(h.api.secrets.open(row.secretKey, sealContext(alice.id, 'secret_key'))).toBe(alice.secret_key);
  });

  it('writes no secret, token or image payload to the logs', () => {
    const log = logLines.join('');
    expect(log).toContain('request completed');
    const task = logLines.find((l) => l.includes('/callbacks/kling/'));
    expect(task).toBeDefined();
    for (const secret of [alice.api_key, bob.api_key, alice.secret_key, alice.webhook_secret, 'sim-upstream-key'])
      expect(log).not.toContain(secret);
    expect(log).not.toContain(pngBase64(400, 400).slice(0, 200));
    expect(log).not.toMatch(/\/callbacks\/kling\/[^/"]+\/(?!\[redacted\])[A-Za-z0-9_-]{20,}/);
  });

  it('follows one request id from the create call into the worker and callback logs', () => {
    const lines = logLines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.some((l) => l.msg === 'submitted upstream' && l.request_id === createRequestId && l.task_id === taskId)).toBe(true);
    expect(lines.some((l) => l.msg === 'callback applied' && l.task_request_id === createRequestId)).toBe(true);
  });

  it('answers unknown routes and methods with a Kling error, not an HTML page', async () => {
    const res = await request(h.url).delete('/v1/images/generations').set(bearer(alice.api_key));
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ code: 1202 });
  });
});
