import request from 'supertest';
import { createLogger } from '../../src/logger';
import { startService } from '../../src/service';
import { bearer } from '../helpers/fixtures';
import { chunkSize } from '../../src/http/rate-limit';
import { startHarness, type Harness } from '../helpers/harness';
import { eventually } from '../helpers/invariants';
import { requestHash } from '../../src/tasks/idempotency';
import { imageGeneration } from '../../src/kinds/image-generation';
import { insertTask } from '../../src/tasks/task-repository';
import { randomUUID } from 'node:crypto';

const post = (h: Harness, key: string, body: object, idem?: string) => {
  const r = request(h.url).post('/v1/images/generations').set(bearer(key));
  if (idem !== undefined) r.set('idempotency-key', idem);
  return r.send(body);
};

describe('Idempotency-Key on create', () => {
  let h: Harness;
  let key: string;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => h.close());
  beforeEach(async () => {
    await h.reset();
    key = (await h.newTenant()).api_key;
  });

  it('returns the same task for the same key and body, with no second upstream task', async () => {
    const first = await post(h, key, { prompt: 'x', n: 2 }, 'order-42');
    await h.waitForTask(first.body.data.task_id, (t) => t.state === 'succeed');
    const again = await post(h, key, { n: 2, prompt: 'x' }, 'order-42');
    expect(again.status).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body.data.task_id).toBe(first.body.data.task_id);
    expect(await h.api.db.task.count()).toBe(1);
    expect(h.sim.createdCount()).toBe(1);
  });

  it('refuses the same key with a different body, clearly, and changes nothing', async () => {
    await post(h, key, { prompt: 'x' }, 'k1');
    const res = await post(h, key, { prompt: 'y' }, 'k1');
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ code: 1201, message: expect.stringMatching(/Idempotency-Key: .*different request body/) });
    expect(await h.api.db.task.count()).toBe(1);
  });

  it('compares requests as they will run: spelled-out defaults and a differently cased URL are the same request', async () => {
    const first = await post(h, key, { prompt: 'x', callback_url: 'http://127.0.0.1:9/hook' }, 'k-defaults');
    expect(first.status).toBe(200);
    const spelledOut = {
      model_name: 'kling-v3',
      n: 1,
      aspect_ratio: '16:9',
      resolution: '1k',
      prompt: 'x',
      callback_url: 'HTTP://127.0.0.1:9/hook',
    };
    const again = await post(h, key, spelledOut, 'k-defaults');
    expect([again.status, again.headers['idempotent-replayed'], again.body.data?.task_id]).toEqual([200, 'true', first.body.data.task_id]);
    // A value other than the default is another request.
    const other = await post(h, key, { ...spelledOut, n: 2 }, 'k-defaults');
    expect([other.status, other.body.code]).toEqual([409, 1201]);
    expect(await h.api.db.task.count()).toBe(1);
  });

  it('still replays a key stored when the hash covered the raw body', async () => {
    const body = { prompt: 'x', n: 1 };
    const first = await post(h, key, body, 'k-old');
    // As a row written before: the hash of the raw body as sent.
    await h.api.db.idempotencyKey.updateMany({ where: { key: 'k-old' }, data: { requestHash: requestHash(body) } });
    const again = await post(h, key, body, 'k-old');
    expect([again.status, again.body.data?.task_id]).toEqual([200, first.body.data.task_id]);
  });

  it('creates exactly one task when duplicates race in', async () => {
    const results = await Promise.all(Array.from({ length: 12 }, () => post(h, key, { prompt: 'race' }, 'same-key')));
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(new Set(results.map((r) => r.body.data.task_id)).size).toBe(1);
    expect(await h.api.db.task.count()).toBe(1);
    await h.waitForTask(results[0].body.data.task_id, (t) => t.state === 'succeed');
    expect(h.sim.createdCount()).toBe(1);
  });

  it('keeps keys per tenant, and refuses a malformed key', async () => {
    const other = (await h.newTenant('other')).api_key;
    const a = await post(h, key, { prompt: 'x' }, 'shared');
    const b = await post(h, other, { prompt: 'x' }, 'shared');
    expect(a.body.data.task_id).not.toBe(b.body.data.task_id);
    const bad = await post(h, key, { prompt: 'x' }, 'has space');
    expect([bad.status, bad.body.code]).toEqual([400, 1201]);
    expect(bad.body.message).toMatch(/Idempotency-Key/);
  });
});

describe('Idempotency-Key before the callback_url address check', () => {
  let h: Harness;
  beforeAll(async () => (h = await startHarness({ workers: false, env: { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'false' } })));
  afterAll(async () => h.close());

  it('replays an accepted request without resolving its callback_url again (DNS may have changed since)', async () => {
    const tenant = await h.newTenant();
    const body = { prompt: 'x', callback_url: 'http://localhost:9/hook' };
    // Accepted earlier, when the host still resolved to a public address.
    const id = randomUUID();
    const validated = { model_name: 'kling-v3', ...body };
    await insertTask(
      h.api.db,
      {
        id,
        tenantId: tenant.id,
        request: { model_name: 'kling-v3', prompt: 'x' },
        modelName: 'kling-v3',
        kind: 'image-generation',
        pool: 'image',
        slotCost: 1,
        callbackUrl: body.callback_url,
      },
      { key: 'k-dns', requestHash: requestHash({ ...imageGeneration.upstreamDefaults, ...validated }) },
    );
    const replayed = await post(h, tenant.api_key, body, 'k-dns');
    expect([replayed.status, replayed.headers['idempotent-replayed'], replayed.body.data?.task_id]).toEqual([200, 'true', id]);
    // The check itself is on: the same body under a new key is refused for its address.
    const fresh = await post(h, tenant.api_key, body, 'k-new');
    expect([fresh.status, fresh.body.code, fresh.body.message]).toEqual([
      400,
      1201,
      expect.stringMatching(/^callback_url: points at a private/),
    ]);
  });
});

describe('retention', () => {
  it('forgets a key after IDEMPOTENCY_TTL_HOURS', async () => {
    const h = await startHarness({ workers: false, env: { IDEMPOTENCY_TTL_HOURS: '0.00003' } });
    try {
      const key = (await h.newTenant()).api_key;
      const a = await post(h, key, { prompt: 'x' }, 'k');
      const stored = await h.api.db.idempotencyKey.findFirstOrThrow({ where: { taskId: a.body.data.task_id } });
      const ttlMs = h.config.IDEMPOTENCY_TTL_HOURS * 3_600_000;
      await eventually('the key is past its TTL', async () => Date.now() - stored.createdAt.getTime() > ttlMs);
      const b = await post(h, key, { prompt: 'x' }, 'k');
      expect(b.status).toBe(200);
      expect(b.body.data.task_id).not.toBe(a.body.data.task_id);
    } finally {
      await h.close();
    }
  });
});

describe('retention cleanup', () => {
  it('deletes expired keys in the sweep, so the table does not grow forever', async () => {
    const h = await startHarness({ env: { IDEMPOTENCY_TTL_HOURS: '0.00003' } });
    try {
      const key = (await h.newTenant()).api_key;
      await post(h, key, { prompt: 'x' }, 'old');
      expect(await h.api.db.idempotencyKey.count()).toBe(1);
      const until = Date.now() + 10_000;
      while ((await h.api.db.idempotencyKey.count()) > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(await h.api.db.idempotencyKey.count()).toBe(0);
      expect(await h.api.db.task.count()).toBe(1);
    } finally {
      await h.close();
    }
  });
});

describe('rate limits', () => {
  it("limits each tenant's requests per minute across API processes, with 429/1302 and Retry-After", async () => {
    const h = await startHarness({ workers: false, env: { RATE_LIMIT_PER_MINUTE: '5' } });
    // A second API process on the same Redis and Postgres.
    const second = await startService({ ...h.config, ROLE: 'api' }, createLogger('silent'), h.config.KLING_BASE_URL!);
    try {
      const alice = (await h.newTenant('alice')).api_key;
      const urls = [h.url, second.server!.url];
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++)
        statuses.push(
          (
            await request(urls[i % 2])
              .get('/v1/images/generations')
              .set(bearer(alice))
          ).status,
        );
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
      const limited = await request(h.url).get('/v1/images/generations').set(bearer(alice));
      expect(limited.body).toMatchObject({ code: 1302 });
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      const bob = (await h.newTenant('bob')).api_key;
      expect((await request(h.url).get('/v1/images/generations').set(bearer(bob))).status).toBe(200);
    } finally {
      await second.close();
      await h.close();
    }
  });

  it("caps a tenant's unfinished tasks, and still replays an accepted request", async () => {
    const h = await startHarness({ workers: false, env: { MAX_UNFINISHED_TASKS: '2' } });
    try {
      const key = (await h.newTenant()).api_key;
      const first = await post(h, key, { prompt: 'a' }, 'a');
      await post(h, key, { prompt: 'b' });
      const third = await post(h, key, { prompt: 'c' });
      expect([third.status, third.body.code]).toEqual([429, 1302]);
      expect(third.headers['retry-after']).toBeDefined();
      expect((await post(h, key, { prompt: 'a' }, 'a')).body.data.task_id).toBe(first.body.data.task_id);
      expect(await h.api.db.task.count()).toBe(2);
    } finally {
      await h.close();
    }
  });
});

describe('rate limit reserves', () => {
  it('counts a large limit in chunks: every request counted, one Redis update per chunk, never under the real count', async () => {
    const h = await startHarness({ workers: false, env: { RATE_LIMIT_PER_MINUTE: '5000' } });
    try {
      expect(chunkSize(5000)).toBe(5);
      expect(chunkSize(1999)).toBe(1);
      const tenant = await h.newTenant();
      const answers = await Promise.all(
        Array.from({ length: 12 }, () => request(h.url).get('/v1/images/generations').set(bearer(tenant.api_key))),
      );
      expect(answers.map((r) => r.status)).toEqual(Array(12).fill(200));
      // 12 requests took three chunks of 5 from the shared count, concurrent ones waiting for one refill.
      expect(await h.api.redis.get(`${h.config.QUEUE_PREFIX}:rate:${tenant.id}`)).toBe('15');
      const remaining = answers.map((r) => Number(r.headers['x-ratelimit-remaining'])).sort((a, b) => b - a);
      expect(remaining[0]).toBe(4999);
      expect(new Set(remaining).size).toBe(12);
    } finally {
      await h.close();
    }
  });
});
