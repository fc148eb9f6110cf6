import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import { bearer, insertQueuedTask } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { eventually } from '../helpers/invariants';
import { freePort, startProcess, type Proc } from '../helpers/processes';
import { startReceiver, type Receiver } from '../helpers/receiver';
import { makeTestCertificate, type TestCertificate } from '../helpers/tls';

/**
 * callback_url schemes in any casing, end to end: tasks created through the API of a real service
 * process (API and workers, as `npm start` runs them), webhooks sent by it to real receivers on
 * 127.0.0.1, plain and TLS. The process trusts the receiver's throwaway certificate through
 * NODE_EXTRA_CA_CERTS (read by Node at start, so it cannot be the jest process).
 */
jest.setTimeout(120_000);

let h: Harness;
let service: Proc;
let cert: TestCertificate;
let rx: Record<'http' | 'https', Receiver>;
let tenant: Awaited<ReturnType<Harness['newTenant']>>;
let api: string;

beforeAll(async () => {
  cert = makeTestCertificate();
  rx = { http: await startReceiver(), https: await startReceiver({ tls: cert }) };
  // The harness gives the simulator and the database; its own API and workers send no webhooks here.
  // Processing lasts long enough for the service to see it even when the processing callback is slow
  // (a cold process under load): the test asserts both webhooks.
  h = await startHarness({ workers: false, simulator: { finishAfterMs: 2000 } });
  tenant = await h.newTenant('schemes');
  const port = await freePort();
  api = `http://127.0.0.1:${port}`;
  service = await startProcess(
    { ...h.env, ROLE: 'all', PORT: String(port), PUBLIC_BASE_URL: api, NODE_EXTRA_CA_CERTS: cert.certPath },
    /workers started/,
  );
});
afterAll(async () => {
  await service?.kill('SIGKILL');
  await Promise.all(Object.values(rx ?? {}).map((r) => r.close()));
  await h?.close();
  cert?.remove();
});

/** Waits until the task has ended and none of its deliveries is pending any more. */
async function deliveriesWhenSettled(taskId: string) {
  const db = h.api.db;
  await eventually(
    'task ended, every delivery finished',
    async () =>
      (await db.task.count({ where: { id: taskId, state: { in: ['succeed', 'failed'] } } })) === 1 &&
      (await db.webhookDelivery.count({ where: { taskId } })) > 0 &&
      (await db.webhookDelivery.count({ where: { taskId, status: 'pending' } })) === 0,
    30_000,
  );
  return db.webhookDelivery.findMany({ where: { taskId }, orderBy: { seq: 'asc' } });
}

/** The receiver's requests for one task, each checked with the independent Standard Webhooks package. */
function verifiedRequests(receiver: Receiver, taskId: string) {
  const wh = new Webhook(tenant.webhook_secret);
  return receiver.received
    .filter((r) => r.json.task_id === taskId)
    .map((r) =>
      wh.verify(r.body, {
        'webhook-id': String(r.headers['webhook-id']),
        'webhook-timestamp': String(r.headers['webhook-timestamp']),
        'webhook-signature': String(r.headers['webhook-signature']),
      }),
    ) as { task_status: string }[];
}

const withScheme = (url: string, scheme: string) => url.replace(/^https?:\/\//, scheme);

describe('a callback_url whose scheme is written in any casing', () => {
  it.each([
    ['http://', 'http'],
    ['HTTP://', 'http'],
    ['Http://', 'http'],
    ['https://', 'https'],
    ['HTTPS://', 'https'],
    ['hTtPs://', 'https'],
  ] as const)('%s: is stored normalised, and every webhook of the task is delivered over %s', async (scheme, kind) => {
    const receiver = rx[kind];
    const res = await request(api)
      .post('/v1/images/generations')
      .set(bearer(tenant.api_key))
      .send({ prompt: 'x', callback_url: withScheme(receiver.url, scheme) });
    expect(res.status).toBe(200);
    const id = res.body.data.task_id as string;

    const stored = await deliveriesWhenSettled(id);
    expect(stored.map((d) => [d.eventType, d.status])).toEqual([
      ['task.processing', 'delivered'],
      ['task.succeeded', 'delivered'],
    ]);
    expect(verifiedRequests(receiver, id).map((b) => b.task_status)).toEqual(['processing', 'succeed']);
    // One form everywhere: the task, its deliveries and the listing below.
    expect((await h.api.db.task.findUnique({ where: { id } }))?.callbackUrl).toBe(receiver.url);
    expect(stored.map((d) => d.url)).toEqual([receiver.url, receiver.url]);

    // What the client sees; the receiver is on loopback, so its answer ("ok") is not recorded.
    const view = (await request(api).get(`/v1/images/generations/${id}/deliveries`).set(bearer(tenant.api_key))).body.data;
    for (const d of view) {
      expect(d).toMatchObject({ url: receiver.url, status: 'delivered', attempt_count: 1 });
      expect(d.attempts).toEqual([expect.objectContaining({ http_status: 200, error: null, response_body: null })]);
    }
  });

  it.each([
    ['HTTPS://', 'https'],
    ['hTtPs://', 'https'],
    ['HTTP://', 'http'],
  ] as const)('%s in a task stored before URLs were normalised: every webhook is delivered over %s', async (scheme, kind) => {
    const receiver = rx[kind];
    const written = withScheme(receiver.url, scheme);
    // Written as an older version stored it; the service process's sweep submits it.
    const id = await insertQueuedTask(h.api.db, tenant.id, written);

    const stored = await deliveriesWhenSettled(id);
    expect(stored.map((d) => [d.eventType, d.status, d.url])).toEqual([
      ['task.processing', 'delivered', written],
      ['task.succeeded', 'delivered', written],
    ]);
    expect(verifiedRequests(receiver, id).map((b) => b.task_status)).toEqual(['processing', 'succeed']);
  });
});
