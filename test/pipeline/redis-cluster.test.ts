import type { Cluster } from 'ioredis';
import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import type { NewTenantCredentials } from '../../src/tenants/tenants.service';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { eventually } from '../helpers/invariants';
import { startReceiver, type Receiver } from '../helpers/receiver';
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster';
import { createAt, FROZEN_UPSTREAM, IMAGE_PATH, moveUpstream, VIDEO_KINDS } from '../helpers/video';

/**
 * The whole service (API and workers) on a private three-node Redis Cluster: BullMQ's queues, the
 * rate limiter, the failed-auth counter, the heartbeat and the task-changes pub/sub all go through
 * cluster clients. The upstream moves only when the test says, and the API never re-reads Postgres
 * for its long polls: only a message through the cluster can wake them.
 */
jest.setTimeout(60_000);

let cluster: RedisCluster;
let h: Harness;
let rx: Receiver;
let tenant: NewTenantCredentials;

beforeAll(async () => {
  cluster = await startRedisCluster();
  h = await startHarness({
    simulator: FROZEN_UPSTREAM,
    apiOptions: { changeRecheckMs: 3_600_000 },
    env: { REDIS_URL: cluster.url, REDIS_CLUSTER: 'true' },
  });
  rx = await startReceiver();
  tenant = await h.newTenant();
});
afterAll(async () => {
  // A failed test may leave its long polls open: close() would wait for them.
  h?.api.server?.server.closeAllConnections();
  await rx?.close();
  await h?.close();
  await cluster?.stop();
});

const KINDS = [{ kind: 'image-generation', path: IMAGE_PATH, body: { prompt: 'a lighthouse at dawn' } }, ...VIDEO_KINDS];
const redis = () => h.api.redis as Cluster;
const prefix = () => h.config.QUEUE_PREFIX;

/** Subscribers of `channel` on the whole cluster (PUBSUB NUMSUB counts one node's own). */
async function subscribers(channel: string): Promise<number> {
  const counts = await Promise.all(
    redis()
      .nodes('master')
      .map(async (n) => ((await n.pubsub('NUMSUB', channel)) as [string, number])[1]),
  );
  return counts.reduce((a, b) => a + b, 0);
}

/** Every key under the prefix, from every primary (each holds only its own slots). */
async function keysUnderPrefix(): Promise<string[]> {
  const perNode = await Promise.all(
    redis()
      .nodes('master')
      .map((n) => n.keys(`${prefix()}*`)),
  );
  return perNode.flat();
}

describe('on a Redis Cluster', () => {
  it('takes a task of each kind to succeed, waking long polls and delivering signed webhooks through the cluster', async () => {
    // The first attempt of every webhook fails: its retry goes through the webhook.deliver queue.
    const attempted = new Set<string>();
    rx.reply = (r) => {
      const id = String(r.headers['webhook-id']);
      if (attempted.has(id)) return { status: 204 };
      attempted.add(id);
      return { status: 503 };
    };
    const ids: string[] = [];
    for (const k of KINDS) ids.push(await createAt(h, tenant.api_key, k.path, { ...k.body, callback_url: rx.url }));
    for (const id of ids) await h.waitForTask(id, (t) => t.state === 'submitted');

    const polls = KINDS.map((k, i) =>
      request(h.url)
        .get(`${k.path}/${ids[i]}?wait=60`)
        .set(bearer(tenant.api_key))
        .then((res) => res),
    );
    const channel = `${prefix()}:task-changes`;
    await eventually(
      'every long poll waiting, subscribed',
      async () => h.api.changes.waiting() === 3 && (await subscribers(channel)) > 0,
      10_000,
    );
    for (const id of ids) await moveUpstream(h, id, 'processing');
    // Woken by the change: a poll left to its 60 s would answer the same body, but far too late.
    await eventually('every long poll woken', async () => h.api.changes.waiting() === 0, 10_000);
    const answers = await Promise.all(polls);
    expect(answers.map((a) => [a.status, a.body.data.task_status])).toEqual(ids.map(() => [200, 'processing']));

    for (const id of ids) await moveUpstream(h, id, 'succeed');
    // Two webhooks a task (processing, succeed), each failed once and then delivered.
    await rx.waitFor(ids.length * 4);
    const events = rx.received.map((r) => {
      const body = new Webhook(tenant.webhook_secret).verify(r.body, {
        'webhook-id': String(r.headers['webhook-id']),
        'webhook-timestamp': String(r.headers['webhook-timestamp']),
        'webhook-signature': String(r.headers['webhook-signature']),
      }) as { task_id: string; task_status: string };
      return `${body.task_id} ${body.task_status}`;
    });
    const expected = ids.flatMap((id) => [`${id} processing`, `${id} succeed`]);
    expect([...new Set(events)].sort()).toEqual(expected.sort());
    // The last answer arrives before its attempt is recorded.
    const deliveries = () => h.api.db.webhookDelivery.findMany({ where: { taskId: { in: ids } } });
    await eventually('every delivery recorded', async () => (await deliveries()).every((d) => d.status !== 'pending'), 5_000);
    expect((await deliveries()).map((d) => [d.status, d.attemptCount])).toEqual(expected.map(() => ['delivered', 2]));
  });

  it("keeps every key under the prefix, BullMQ's and its own, in the prefix's hash slot", async () => {
    expect(prefix()).toMatch(/^\{kt-test-[0-9a-f]{8}\}$/);
    // Readiness reads the workers' heartbeat in Redis, and a refused credential is counted there.
    const ready = await request(h.url).get('/readyz');
    expect([ready.status, ready.body.data]).toEqual([200, { postgres: 'ok', redis: 'ok', workers: 'ok' }]);
    expect((await request(h.url).get(IMAGE_PATH).set(bearer('kt_not-a-key'))).status).toBe(401);
    const counted = async () => (await keysUnderPrefix()).some((k) => k.startsWith(`${prefix()}:auth-failures:`));
    await eventually('the refused credential counted in Redis', counted, 5_000);

    const keys = await keysUnderPrefix();
    for (const q of h.api.queues.all) expect(keys.some((k) => k.startsWith(`${prefix()}:${q.name}:`))).toBe(true);
    expect(keys).toEqual(expect.arrayContaining([`${prefix()}:workers:heartbeat`, `${prefix()}:rate:${tenant.id}`]));
    expect(Number(await redis().get(`${prefix()}:rate:${tenant.id}`))).toBeGreaterThan(0);
    const slots = await Promise.all(keys.map((k) => redis().cluster('KEYSLOT', k)));
    expect(new Set(slots)).toEqual(new Set([await redis().cluster('KEYSLOT', prefix())]));
  });
});
