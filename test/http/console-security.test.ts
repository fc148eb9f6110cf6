import request from 'supertest';
import { bearer } from '../helpers/fixtures';
import { syncEnvAccount } from '../../src/accounts/account-repository';
import { startHarness, type Harness } from '../helpers/harness';
import { revokeTenant } from '../../src/tenants/tenants.service';

/**
 * The web console's API (/console/api): sessions, CSRF and tenant isolation, over real HTTP against
 * the real service. No queue workers: these tests look at what the API accepts and refuses.
 */
const ADMIN = 'console-security-admin-token';
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ env: { ADMIN_TOKEN: ADMIN }, workers: false });
});
afterAll(async () => {
  await h.close();
});
beforeEach(async () => {
  await h.reset();
});

/** Signs in; the session cookie and the CSRF token the page would hold. */
async function signIn(key: string) {
  const res = await request(h.url).post('/console/api/session').send({ api_key: key });
  expect(res.status).toBe(200);
  const setCookie = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
  const cookie = setCookie[0].split(';')[0];
  return { cookie, csrf: res.body.data.csrf_token as string, setCookie: setCookie[0], body: res.body };
}

async function createViaApi(key: string, prompt: string) {
  const res = await request(h.url)
    .post('/v1/images/generations')
    .set(bearer(key))
    .send({ prompt, external_task_id: `ext-${prompt}` });
  expect(res.status).toBe(200);
  return res.body.data.task_id as string;
}

describe('POST /console/api/session', () => {
  it('exchanges an API key for an HttpOnly, SameSite=Strict session cookie scoped to /console, and never echoes the key', async () => {
    const { api_key } = await h.newTenant('alice');
    const { setCookie, body } = await signIn(api_key);
    expect(setCookie).toMatch(/^kt_console=[A-Za-z0-9_-]{40,};/);
    expect(setCookie).toMatch(/; HttpOnly/i);
    expect(setCookie).toMatch(/; SameSite=Strict/i);
    expect(setCookie).toMatch(/; Path=\/console/i);
    // Plain HTTP here: a Secure cookie would never come back.
    expect(setCookie).not.toMatch(/; Secure/i);
    expect(body.data).toEqual({ role: 'tenant', name: 'alice', csrf_token: expect.any(String) });
    expect(JSON.stringify(body)).not.toContain(api_key);
  });

  it('marks the cookie Secure when the request came over https (through a trusted proxy)', async () => {
    const proxied = await startHarness({ env: { ADMIN_TOKEN: ADMIN, TRUST_PROXY: 'loopback' }, workers: false });
    try {
      const { api_key } = await proxied.newTenant('alice');
      const res = await request(proxied.url).post('/console/api/session').set('x-forwarded-proto', 'https').send({ api_key });
      expect(res.status).toBe(200);
      expect(String(res.headers['set-cookie'])).toMatch(/; Secure/i);
    } finally {
      await proxied.close();
    }
  });

  it('refuses a wrong key with 401 and no cookie', async () => {
    await h.newTenant('alice');
    const res = await request(h.url).post('/console/api/session').send({ api_key: 'kt_not-a-real-key' });
    expect(res.status).toBe(401);
    expect(res.body.code).toBe(1002);
    expect(res.headers['set-cookie']).toBeUndefined();
  });

  it('refuses a sign-in that is not JSON (what a cross-site form would send), naming the content type', async () => {
    const { api_key } = await h.newTenant('alice');
    const res = await request(h.url).post('/console/api/session').type('form').send({ api_key });
    expect(res.status).toBe(415);
    expect(res.headers['set-cookie']).toBeUndefined();
  });

  it('refuses a body without api_key with 400/1201 naming the field', async () => {
    const res = await request(h.url).post('/console/api/session').send({});
    expect(res.status).toBe(400);
    expect(res.body.code).toBe(1201);
    expect(res.body.message).toMatch(/^api_key: /);
  });
});

describe('console pages and API headers', () => {
  it('serves /console with a strict Content-Security-Policy (no inline script or style) and no-cache', async () => {
    const res = await request(h.url).get('/console');
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-cache');
    const csp = res.headers['content-security-policy'] as string;
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    // The page's own markup has no inline script either: only the hashed bundle.
    expect(res.text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const asset = /src="(\/console\/assets\/[^"]+\.js)"/.exec(res.text)?.[1];
    expect(asset).toBeDefined();
    const js = await request(h.url).get(asset!);
    expect(js.status).toBe(200);
    expect(js.headers['cache-control']).toMatch(/max-age=31536000/);
    expect(js.headers['cache-control']).toMatch(/immutable/);
  });

  it('answers every console API call without a session with 401, and with no-store once signed in', async () => {
    for (const path of ['/console/api/tasks', '/console/api/kinds', '/console/api/operator/overview', '/console/api/stream']) {
      const res = await request(h.url).get(path);
      expect([path, res.status]).toEqual([path, 401]);
    }
    const { cookie } = await signIn((await h.newTenant('alice')).api_key);
    const res = await request(h.url).get('/console/api/tasks').set('cookie', cookie);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
  });
});

describe('CSRF', () => {
  it('refuses a state-changing call without the CSRF header or with a wrong one, and changes nothing', async () => {
    const { api_key } = await h.newTenant('alice');
    const taskId = await createViaApi(api_key, 'keep-me');
    const { cookie, csrf } = await signIn(api_key);
    const cancel = `/console/api/tasks/${taskId}/cancel`;
    const missing = await request(h.url).post(cancel).set('cookie', cookie);
    expect(missing.status).toBe(401);
    expect(missing.body.message).toMatch(/x-csrf-token/);
    const wrong = await request(h.url).post(cancel).set('cookie', cookie).set('x-csrf-token', `${csrf}x`);
    expect(wrong.status).toBe(401);
    const create = await request(h.url).post('/console/api/kinds/image-generation/tasks').set('cookie', cookie).send({ prompt: 'sneaky' });
    expect(create.status).toBe(401);
    const task = await h.api.db.task.findUniqueOrThrow({ where: { id: taskId } });
    expect(task.state).toBe('queued');
    expect(task.cancelRequestedAt).toBeNull();
    expect(await h.api.db.task.count()).toBe(1);
    // With the token, the same call goes through.
    const ok = await request(h.url).post(cancel).set('cookie', cookie).set('x-csrf-token', csrf);
    expect(ok.status).toBe(200);
    expect(ok.body.data.tracker.state).toBe('canceled');
  });

  it('ends the session on sign-out: the cookie no longer opens anything', async () => {
    const { cookie, csrf } = await signIn((await h.newTenant('alice')).api_key);
    const out = await request(h.url).delete('/console/api/session').set('cookie', cookie).set('x-csrf-token', csrf);
    expect(out.status).toBe(200);
    expect(String(out.headers['set-cookie'])).toMatch(/kt_console=;/);
    const after = await request(h.url).get('/console/api/tasks').set('cookie', cookie);
    expect(after.status).toBe(401);
  });
});

describe('a revoked key', () => {
  it('ends the sessions it opened, at their next call', async () => {
    const alice = await h.newTenant('alice');
    const { cookie } = await signIn(alice.api_key);
    expect((await request(h.url).get('/console/api/tasks').set('cookie', cookie)).status).toBe(200);
    expect(await revokeTenant(h.api.db, alice.id)).toBe(true);
    expect((await request(h.url).get('/console/api/tasks').set('cookie', cookie)).status).toBe(401);
    expect((await request(h.url).post('/console/api/session').send({ api_key: alice.api_key })).status).toBe(401);
  });
});

describe('tenant isolation', () => {
  it("answers another tenant's task with the API's own 404, by task_id and by external_task_id, and lists none of it", async () => {
    const alice = await h.newTenant('alice');
    const bob = await h.newTenant('bob');
    const taskId = await createViaApi(alice.api_key, 'private');
    const { cookie, csrf } = await signIn(bob.api_key);
    const api = await request(h.url).get(`/v1/images/generations/${taskId}`).set(bearer(bob.api_key));
    for (const id of [taskId, 'ext-private']) {
      const res = await request(h.url).get(`/console/api/tasks/${id}`).set('cookie', cookie);
      expect(res.status).toBe(404);
      expect({ code: res.body.code, message: res.body.message }).toEqual({
        code: api.body.code,
        message: api.body.message.replace(taskId, id),
      });
    }
    const cancel = await request(h.url).post(`/console/api/tasks/${taskId}/cancel`).set('cookie', cookie).set('x-csrf-token', csrf);
    expect(cancel.status).toBe(404);
    const list = await request(h.url).get('/console/api/tasks').set('cookie', cookie);
    expect(list.body.data.items).toEqual([]);
    const search = await request(h.url).get(`/console/api/tasks?q=${taskId}`).set('cookie', cookie);
    expect(search.body.data.items).toEqual([]);
    expect((await h.api.db.task.findUniqueOrThrow({ where: { id: taskId } })).state).toBe('queued');
  });

  it("keeps a tenant out of the operator view, and the operator's session works only there", async () => {
    const { cookie } = await signIn((await h.newTenant('alice')).api_key);
    expect((await request(h.url).get('/console/api/operator/overview').set('cookie', cookie)).status).toBe(404);
    const op = await signIn(ADMIN);
    expect(op.body.data.role).toBe('operator');
    // What a worker process does at start (this harness runs none): the environment's account in the pool.
    await syncEnvAccount(h.api.db, { baseUrl: 'http://upstream.example', slotLimits: { image: 10, video: 10 } });
    const overview = await request(h.url).get('/console/api/operator/overview').set('cookie', op.cookie);
    expect(overview.status).toBe(200);
    expect(overview.body.data.accounts[0]).toMatchObject({
      health: 'ok',
      enabled: true,
      pools: { image: { limit: 10 }, video: { limit: 10 } },
    });
    expect((await request(h.url).get('/console/api/tasks').set('cookie', op.cookie)).status).toBe(400);
  });
});

describe('GET /console/api/tasks', () => {
  it('pages newest first by keyset, across kinds, and filters by status and kind', async () => {
    const { api_key } = await h.newTenant('alice');
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push(await createViaApi(api_key, `p${i}`));
    const video = await request(h.url).post('/v1/videos/text2video').set(bearer(api_key)).send({ prompt: 'a wave' });
    expect(video.status).toBe(200);
    const { cookie } = await signIn(api_key);
    const first = await request(h.url).get('/console/api/tasks').set('cookie', cookie);
    expect(first.body.data.items[0].task_id).toBe(video.body.data.task_id);
    expect(first.body.data.items[0].kind).toBe('text-to-video');
    expect(first.body.data.items[1].prompt).toBe('p29');
    const second = await request(h.url).get(`/console/api/tasks?after=${first.body.data.next}`).set('cookie', cookie);
    const all = [...first.body.data.items, ...second.body.data.items].map((t: any) => t.task_id);
    expect(all).toEqual([video.body.data.task_id, ...ids.reverse()]);
    expect(second.body.data.next).toBeNull();
    const images = await request(h.url).get('/console/api/tasks?kind=image-generation&status=submitted').set('cookie', cookie);
    expect(images.body.data.items).toHaveLength(24);
    expect(images.body.data.items.every((t: any) => t.kind === 'image-generation')).toBe(true);
    const none = await request(h.url).get('/console/api/tasks?status=succeed').set('cookie', cookie);
    expect(none.body.data.items).toEqual([]);
    const bad = await request(h.url).get('/console/api/tasks?status=done').set('cookie', cookie);
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/^status: /);
  });
});
