import { createCipheriv, randomBytes, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { callbackPath } from '../../src/callbacks/callback-token';
import { sealContext } from '../../src/tenants/secret-box';
import { resealLegacySecrets } from '../../src/tenants/tenants.service';
import { bearer, insertQueuedTask } from '../helpers/fixtures';
import { startHarness, UPSTREAM_KEY, type Harness } from '../helpers/harness';
import { eventually, lookupsByExternalId } from '../helpers/invariants';
import { freePort, runCli, startProcess } from '../helpers/processes';

/**
 * What someone holding a copy of the database (and not the secrets key) can do with it: nothing.
 * Callback tokens are derived, tenant secrets are sealed and bound to their row and column, and a
 * callback for a task without an upstream id is checked with the upstream before it counts.
 */
jest.setTimeout(60_000);
const now = () => Math.floor(Date.now() / 1000);

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ simulator: { processingAfterMs: 60_000 } });
});
afterAll(async () => h.close());

const list = (token: string) => request(h.url).get('/v1/images/generations').set(bearer(token));

describe('callback tokens', () => {
  it('are stored nowhere: nothing in the task or tenant rows completes the task, the derived token does', async () => {
    h.sim.faults.loseCallbacks = true;
    const tenant = await h.newTenant();
    const id = (await request(h.url).post('/v1/images/generations').set(bearer(tenant.api_key)).send({ prompt: 'x' })).body.data.task_id;
    const task = await h.waitForTask(id, (t) => t.state === 'submitted');
    expect(task.callbackToken).toBeNull();
    const dump = [
      JSON.stringify(task, (_k, v) => (typeof v === 'bigint' ? String(v) : v)),
      JSON.stringify(await h.api.db.tenant.findMany()),
    ];
    const candidates = new Set(dump.join(' ').match(/[A-Za-z0-9_-]{16,}/g));
    const forged = {
      task_id: task.upstreamTaskId,
      task_status: 'succeed',
      task_result: { images: [{ index: 0, url: 'https://evil.example/x.png' }] },
    };
    for (const token of candidates) {
      const res = await request(h.url).post(callbackPath(id, token)).send(forged);
      expect(res.status).toBe(401);
    }
    expect(await h.api.db.task.findUniqueOrThrow({ where: { id } })).toMatchObject({ state: 'submitted', result: null });
    // The upstream was given the derived token, and it works.
    const sent = h.sim.received.find((r) => r.method === 'POST');
    expect((sent!.body as { callback_url: string }).callback_url).toBe(`${h.url}${callbackPath(id, h.api.callbackTokens.forTask(id))}`);
    const ok = await request(h.url)
      .post(callbackPath(id, h.api.callbackTokens.forTask(id)))
      .send({ task_id: task.upstreamTaskId, task_status: 'processing' });
    expect([ok.status, ok.body.data.applied]).toEqual([200, true]);
    h.sim.faults.loseCallbacks = false;
  });

  it('of tasks created before tokens were derived still work: the stored token goes upstream and is accepted back', async () => {
    const tenant = await h.newTenant();
    // A row as created before: a random token stored in clear (the sweep submits it).
    const id = await insertQueuedTask(h.api.db, tenant.id);
    const stored = (await h.api.db.task.findUniqueOrThrow({ where: { id } })).callbackToken!;
    const task = await h.waitForTask(id, (t) => t.state === 'submitted');
    const sent = h.sim.received.find((r) => r.method === 'POST' && (r.body as { external_task_id?: string }).external_task_id === id);
    expect((sent!.body as { callback_url: string }).callback_url).toBe(`${h.url}${callbackPath(id, stored)}`);
    h.sim.setTaskStatus(task.upstreamTaskId!, 'succeed');
    expect(await h.waitForTask(id, (t) => t.state === 'succeed')).toMatchObject({ callbackToken: stored });
    expect(h.sim.callbacks.filter((c) => c.task_id === task.upstreamTaskId).every((c) => c.ok)).toBe(true);
    // Another token of the stored kind is compared with the row, and refused.
    const other = await request(h.url)
      .post(callbackPath(id, randomBytes(24).toString('base64url')))
      .send({ task_id: task.upstreamTaskId, task_status: 'failed' });
    expect(other.status).toBe(401);
  });
});

describe('a callback for a task with no upstream id yet', () => {
  // No submissions from here on: only the test's callbacks change these tasks.
  beforeAll(async () => h.worker!.workers!.close());

  /** A task of ours still queued, and (optionally) an upstream task made with its id as external_task_id. */
  async function queuedTaskKnownUpstream(known: boolean, callbackUrl?: string) {
    const tenant = await h.newTenant();
    const id = await insertQueuedTask(h.api.db, tenant.id, callbackUrl);
    let upstreamId: string | undefined;
    if (known) {
      const created = await fetch(`${h.env.KLING_BASE_URL}/v1/images/generations`, {
        method: 'POST',
        headers: { authorization: `Bearer ${UPSTREAM_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model_name: 'kling-v3', prompt: 'x', external_task_id: id }),
      });
      upstreamId = ((await created.json()) as { data: { task_id: string } }).data.task_id;
    }
    return { id, upstreamId, url: callbackPath(id, h.api.callbackTokens.forTask(id)) };
  }

  it('is applied only as the upstream itself reports the task: a forged result is not taken', async () => {
    const { id, upstreamId, url } = await queuedTaskKnownUpstream(true);
    const forged = {
      task_id: upstreamId,
      task_status: 'succeed',
      task_result: { images: [{ index: 0, url: 'https://evil.example/x.png' }] },
    };
    const res = await request(h.url).post(url).send(forged);
    expect(res.status).toBe(200);
    // The upstream says the task was just submitted: that is what is recorded, nothing of the forged body.
    expect(await h.api.db.task.findUniqueOrThrow({ where: { id } })).toMatchObject({
      state: 'submitted',
      upstreamTaskId: upstreamId,
      result: null,
    });
    expect(lookupsByExternalId(h.sim, id)).toBeGreaterThan(0);
  });

  it("that reported a status the upstream has since moved past is applied as that step and then the upstream's answer, in order", async () => {
    // The callback beat the submission's answer, and the upstream finished the task before we asked.
    const { id, upstreamId, url } = await queuedTaskKnownUpstream(true, 'http://127.0.0.1:9/hook');
    h.sim.setTaskStatus(upstreamId!, 'succeed', { sendCallback: false });
    const claimed = {
      task_id: upstreamId,
      task_status: 'processing',
      task_result: { images: [{ index: 0, url: 'https://evil.example/x.png' }] },
    };
    const res = await request(h.url).post(url).send(claimed);
    expect([res.status, res.body.data.applied]).toEqual([200, true]);
    const events = await h.api.db.taskEvent.findMany({ where: { taskId: id }, orderBy: { seq: 'asc' } });
    expect(events.map((e) => [e.fromState, e.toState])).toEqual([
      [null, 'queued'],
      ['queued', 'processing'],
      ['processing', 'succeed'],
    ]);
    // The client is told of both, in order; the result is the upstream's, nothing of the callback's body.
    const deliveries = await h.api.db.webhookDelivery.findMany({ where: { taskId: id }, orderBy: { seq: 'asc' } });
    expect(deliveries.map((d) => (JSON.parse(d.body) as { task_status: string }).task_status)).toEqual(['processing', 'succeed']);
    expect(deliveries.map((d) => d.body).join()).not.toContain('evil.example');
    const task = await h.api.db.task.findUniqueOrThrow({ where: { id } });
    expect(task).toMatchObject({ state: 'succeed', upstreamTaskId: upstreamId });
    expect(JSON.stringify(task.result)).toContain(upstreamId);
    expect(JSON.stringify(task.result)).not.toContain('evil.example');
  });

  it('naming a task_id the upstream never gave this task is refused, and changes nothing', async () => {
    const { id, url } = await queuedTaskKnownUpstream(true);
    const res = await request(h.url).post(url).send({ task_id: 'made-up', task_status: 'succeed' });
    expect([res.status, res.body.code]).toEqual([400, 1201]);
    expect(await h.api.db.task.findUniqueOrThrow({ where: { id } })).toMatchObject({ state: 'queued', upstreamTaskId: null });
  });

  it('for a task the upstream does not know is answered 503 (retry later), and changes nothing', async () => {
    const { id, url } = await queuedTaskKnownUpstream(false);
    const res = await request(h.url).post(url).send({ task_id: 'anything', task_status: 'succeed' });
    expect([res.status, res.body.code, res.headers['retry-after']]).toEqual([503, 5001, '1']);
    expect(await h.api.db.task.findUniqueOrThrow({ where: { id } })).toMatchObject({ state: 'queued', upstreamTaskId: null });
  });
});

describe('tenant secrets', () => {
  it('moved to another tenant in the database open for nobody: a refusal, not an error', async () => {
    const alice = await h.newTenant('alice');
    const bob = await h.newTenant('bob');
    const aliceRow = await h.api.db.tenant.findUniqueOrThrow({ where: { id: alice.id } });
    await h.api.db.tenant.update({ where: { id: bob.id }, data: { secretKey: aliceRow.secretKey } });
    const signed = (iss: string, secret: string) => jwt.sign({ iss, exp: now() + 600, nbf: now() - 5 }, secret);
    // Alice's secret now sits in Bob's row: neither Alice's secret nor Bob's own signs for Bob.
    expect((await list(signed(bob.access_key, alice.secret_key))).status).toBe(401);
    expect((await list(signed(bob.access_key, bob.secret_key))).status).toBe(401);
    expect((await list(signed(alice.access_key, alice.secret_key))).status).toBe(200);
  });

  it('sealed before they were bound to their row are sealed again at start, and keep working', async () => {
    const tenant = await h.newTenant('legacy');
    const key = Buffer.from(h.env.SECRETS_KEY, 'base64');
    const sealV1 = (plain: string) => {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', key, iv);
      const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
      return ['v1', iv.toString('base64'), c.getAuthTag().toString('base64'), ct.toString('base64')].join(':');
    };
    await h.api.db.tenant.update({
      where: { id: tenant.id },
      data: { secretKey: sealV1(tenant.secret_key), webhookSecret: sealV1(tenant.webhook_secret) },
    });
    const token = jwt.sign({ iss: tenant.access_key, exp: now() + 600, nbf: now() - 5 }, tenant.secret_key);
    await eventually('the change reached the cache', async () => (await list(token)).status === 401, 5000);
    expect(await resealLegacySecrets(h.api.db, key)).toBe(1);
    const row = await h.api.db.tenant.findUniqueOrThrow({ where: { id: tenant.id } });
    expect([row.secretKey.slice(0, 3), row.webhookSecret.slice(0, 3)]).toEqual(['v2:', 'v2:']);
    expect(h.api.secrets.open(row.webhookSecret, sealContext(tenant.id, 'webhook_secret'))).toBe(tenant.webhook_secret);
    await eventually('the resealed secret signs again', async () => (await list(token)).status === 200, 5000);
    expect(await resealLegacySecrets(h.api.db, key)).toBe(0);
  });
});

describe('client JWTs', () => {
  it(`are refused when they live longer than JWT_MAX_LIFETIME_S (default a day), measured from nbf or from now`, async () => {
    const t = await h.newTenant();
    const sign = (claims: object) => jwt.sign({ iss: t.access_key, ...claims }, t.secret_key);
    expect((await list(sign({ exp: now() + 1800, nbf: now() - 5 }))).status).toBe(200);
    expect((await list(sign({ exp: now() + 86_000 }))).status).toBe(200);
    for (const claims of [
      { exp: now() + 2 * 86_400, nbf: now() - 5 },
      { exp: now() + 600, nbf: now() - 86_400 },
      { exp: now() + 86_500 },
    ]) {
      const res = await list(sign(claims));
      expect([res.status, res.body.code, res.body.message]).toEqual([401, 1002, expect.stringMatching(/lifetime.*86400/)]);
    }
  });
});

describe('keys rotate-secret', () => {
  it('prints a new secret_key; JWTs signed with the old one are refused at once, the new one works', async () => {
    const t = await h.newTenant();
    const sign = (secret: string) => jwt.sign({ iss: t.access_key, exp: now() + 600, nbf: now() - 5 }, secret);
    expect((await list(sign(t.secret_key))).status).toBe(200);
    const env = { DATABASE_URL: h.env.DATABASE_URL, SECRETS_KEY: h.env.SECRETS_KEY };
    const { code, stdout } = await runCli(['keys', 'rotate-secret', t.id], env);
    expect(code).toBe(0);
    const printed = JSON.parse(stdout);
    expect(Object.keys(printed).sort()).toEqual(['access_key', 'id', 'secret_key']);
    expect(printed).toMatchObject({ id: t.id, access_key: t.access_key });
    expect(printed.secret_key).not.toBe(t.secret_key);
    await eventually('the old secret is refused', async () => (await list(sign(t.secret_key))).status === 401, 5000);
    expect((await list(sign(printed.secret_key))).status).toBe(200);
    expect((await runCli(['keys', 'rotate-secret', randomUUID()], env)).code).toBe(2);
  });
});

describe('the key caches', () => {
  it('forget every key when the tenants table is truncated', async () => {
    const own = await startHarness({ workers: false });
    try {
      const t = await own.newTenant();
      expect((await request(own.url).get('/v1/images/generations').set(bearer(t.api_key))).status).toBe(200);
      await own.api.db.$executeRawUnsafe('TRUNCATE tenants CASCADE');
      await eventually(
        'the key is refused',
        async () => (await request(own.url).get('/v1/images/generations').set(bearer(t.api_key))).status === 401,
        5000,
      );
    } finally {
      await own.close();
    }
  });
});

describe('logs', () => {
  it('never show credentials written into KLING_BASE_URL', async () => {
    const port = await freePort();
    const proc = await startProcess(
      {
        ...h.env,
        ROLE: 'worker',
        PORT: String(port),
        KLING_BASE_URL: `http://kling-user:s3cr3t-pass@127.0.0.1:${port}/kling?key=query-secret`,
      },
      /workers started/,
    );
    try {
      expect(proc.output()).toMatch(/"upstream":"http:\/\/redacted:redacted@127\.0\.0\.1:\d+\/kling\?key=redacted"/);
      for (const secret of ['kling-user', 's3cr3t-pass', 'query-secret']) expect(proc.output()).not.toContain(secret);
    } finally {
      await proc.kill('SIGKILL');
    }
  });
});
