import { randomBytes } from 'node:crypto';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { callbackPath } from '../../src/callbacks/callback-token';
import { apiKeyShape } from '../../src/tenants/api-key';
import { hashApiKey } from '../../src/tenants/tenants.service';
import { bearer } from '../helpers/fixtures';
import { eventually } from '../helpers/invariants';
import { startHarness, type Harness } from '../helpers/harness';

const now = () => Math.floor(Date.now() / 1000);

describe('tenant auth, Kling style', () => {
  let h: Harness;
  let creds: Awaited<ReturnType<Harness['newTenant']>>;
  beforeAll(async () => {
    h = await startHarness({ workers: false });
    creds = await h.newTenant('jwt-user');
  });
  afterAll(async () => h.close());

  const list = (token: string) => request(h.url).get('/v1/images/generations').set(bearer(token));
  const sign = (claims: object, secret = creds.secret_key, opts: jwt.SignOptions = { algorithm: 'HS256' }) =>
    jwt.sign(claims, secret, opts);

  it('accepts an HS256 JWT {iss: access_key, exp, nbf} signed with the secret_key', async () => {
    const res = await list(sign({ iss: creds.access_key, exp: now() + 1800, nbf: now() - 5 }));
    expect([res.status, res.body.code]).toEqual([200, 0]);
  });

  it.each([
    ['expired', 1004, () => sign({ iss: creds.access_key, exp: now() - 60, nbf: now() - 120 })],
    ['not yet valid', 1003, () => sign({ iss: creds.access_key, exp: now() + 1800, nbf: now() + 600 })],
    ['signed with another secret', 1002, () => sign({ iss: creds.access_key, exp: now() + 1800 }, 'not-the-secret')],
    ['for an unknown access key', 1002, () => sign({ iss: 'ak_unknown', exp: now() + 1800 })],
    ['without exp', 1002, () => sign({ iss: creds.access_key, nbf: now() - 5 })],
    ['with alg none', 1002, () => jwt.sign({ iss: creds.access_key, exp: now() + 1800 }, '', { algorithm: 'none' })],
    ['with HS512', 1002, () => sign({ iss: creds.access_key, exp: now() + 1800 }, creds.secret_key, { algorithm: 'HS512' })],
  ])('refuses a JWT %s with 401/%i', async (_name, code, token) => {
    const res = await list(token());
    expect([res.status, res.body.code]).toEqual([401, code]);
  });

  it('issues keys with a checksum, and still accepts a key issued before checksums', async () => {
    expect(creds.api_key).toMatch(/^kt_[0-9A-Za-z]{38}$/);
    expect(apiKeyShape(creds.api_key)).toBe('valid');
    expect((await list(creds.api_key)).status).toBe(200);
    // A key of the earlier format (kt_ + 32 base64url characters), stored as its hash.
    const legacy = `kt_${randomBytes(24).toString('base64url')}`;
    const older = await h.newTenant('older');
    await h.api.db.tenant.update({ where: { id: older.id }, data: { apiKeyHash: hashApiKey(legacy), apiKeyPrefix: legacy.slice(0, 7) } });
    await eventually('the old-format key is served', async () => (await list(legacy)).status === 200, 5000);
    // One changed character of a checksummed key is a malformed key, not another tenant's.
    const typo = creds.api_key.slice(0, -1) + (creds.api_key.endsWith('A') ? 'B' : 'A');
    expect(apiKeyShape(typo)).toBe('malformed');
    expect([(await list(typo)).status, (await list(typo)).body.code]).toEqual([401, 1002]);
  });
});

describe('upstream AK/SK credentials', () => {
  let h: Harness;
  afterAll(async () => h.close());

  it('signs its own JWT for the upstream and takes a task to succeed', async () => {
    h = await startHarness({
      simulator: { accessKey: 'up-ak', secretKey: 'up-sk-0123456789', apiKey: undefined },
      env: { KLING_API_KEY: '', KLING_ACCESS_KEY: 'up-ak', KLING_SECRET_KEY: 'up-sk-0123456789' },
    });
    const key = (await h.newTenant()).api_key;
    const id = (await request(h.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'x' })).body.data.task_id;
    await h.waitForTask(id, (t) => t.state === 'succeed');
    const sent = h.sim.received.find((r) => r.method === 'POST')!;
    expect((jwt.decode(sent.authorization!.slice('Bearer '.length)) as jwt.JwtPayload).iss).toBe('up-ak');
  });
});

describe('signed upstream callbacks (KLING_WEBHOOK_SECRET)', () => {
  const secret = 'whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI=';
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ simulator: { callbackSecret: secret }, env: { KLING_WEBHOOK_SECRET: secret } });
  });
  afterAll(async () => h.close());

  it('applies callbacks carrying a valid signature', async () => {
    const key = (await h.newTenant()).api_key;
    const id = (await request(h.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'x' })).body.data.task_id;
    await h.waitForTask(id, (t) => t.state === 'succeed');
  });

  it('refuses a callback with the right token but no valid signature, and changes nothing', async () => {
    h.sim.faults.loseCallbacks = true;
    const key = (await h.newTenant('b')).api_key;
    const id = (await request(h.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'x' })).body.data.task_id;
    const task = await h.waitForTask(id, (t) => t.state === 'submitted');
    const body = { task_id: task.upstreamTaskId, task_status: 'succeed' };
    const unsigned = await request(h.url)
      .post(callbackPath(id, h.api.callbackTokens.forTask(id)))
      .send(body);
    expect([unsigned.status, unsigned.body.code]).toEqual([401, 1002]);
    const forged = await request(h.url)
      .post(callbackPath(id, h.api.callbackTokens.forTask(id)))
      .set({ 'webhook-id': 'msg_1', 'webhook-timestamp': String(now()), 'webhook-signature': 'v1,AAAA' })
      .send(body);
    expect(forged.status).toBe(401);
    expect((await h.api.db.task.findUniqueOrThrow({ where: { id } })).state).toBe('submitted');
  });
});
