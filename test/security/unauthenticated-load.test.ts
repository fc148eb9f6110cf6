import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import jwt from 'jsonwebtoken';
import pg from 'pg';
import request from 'supertest';
import { newApiKey } from '../../src/tenants/api-key';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { eventually } from '../helpers/invariants';

/**
 * What an unauthenticated client can make the service do. Credentials are checked before any
 * body is read; a malformed key costs arithmetic, an unknown one a lookup at most once (negative
 * cache), and an address over AUTH_FAILURES_PER_MINUTE gets 429 with no lookup at all. Queries are
 * counted where they leave the process: every pg client's `query`, called through.
 */
jest.setTimeout(60_000);

const LIMIT = 20;
let h: Harness;
let queries: jest.SpyInstance;

beforeAll(async () => {
  // Behind a trusted proxy (loopback), each test is its own client address (X-Forwarded-For).
  h = await startHarness({ workers: false, env: { AUTH_FAILURES_PER_MINUTE: String(LIMIT), TRUST_PROXY: 'loopback' } });
  queries = jest.spyOn(pg.Client.prototype, 'query');
});
afterAll(async () => {
  queries.mockRestore();
  await h.close();
});

/** A client address of its own for each use, from TEST-NET-3. */
let nextAddress = 1;
const newAddress = () => `203.0.113.${nextAddress++}`;

interface Answer {
  status: number;
  body: { code?: number; message?: string };
  retryAfter?: string;
}

/** A POST with a body of `bytes`, written whole whatever the server does (as a careless client would). */
function post(path: string, headers: Record<string, string>, bytes: number): Promise<Answer | 'reset'> {
  const u = new URL(h.url);
  const body = JSON.stringify({ prompt: 'x', image: 'A'.repeat(Math.max(0, bytes - 30)) });
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          let parsed = {};
          try {
            parsed = JSON.parse(text);
          } catch {
            /* not JSON: kept empty, the assertions say so */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, retryAfter: res.headers['retry-after'] as string | undefined });
        });
      },
    );
    // The server may close after its answer without reading the rest: that is the point.
    req.on('error', () => resolve('reset'));
    req.end(body);
  });
}

const unsignedJwt = (iss: string) => jwt.sign({ iss, exp: Math.floor(Date.now() / 1000) + 600 }, randomBytes(16).toString('hex'));
/** Every kind of bad credential, with a large body; i picks the kind. */
function badRequest(i: number, address: string, bytes: number) {
  const xff = { 'x-forwarded-for': address };
  const task = randomUUID();
  switch (i % 7) {
    case 0:
      return post('/v1/images/generations', { ...xff, authorization: `Bearer kt_${randomBytes(20).toString('hex')}` }, bytes);
    case 1:
      return post('/v1/images/generations', { ...xff, authorization: `Bearer ${newApiKey()}` }, bytes);
    case 2:
      return post('/v1/images/generations', { ...xff, authorization: `Bearer kt_${randomBytes(24).toString('base64url')}` }, bytes);
    case 3:
      return post(
        '/v1/images/generations',
        { ...xff, authorization: `Bearer ${unsignedJwt(`ak_${randomBytes(12).toString('hex')}`)}` },
        bytes,
      );
    case 4:
      return post('/v1/images/generations', xff, bytes);
    case 5:
      return post(`/callbacks/kling/${task}/${randomBytes(32).toString('base64url')}`, xff, bytes);
    default:
      return post(`/callbacks/kling/${task}/${randomBytes(24).toString('base64url')}`, xff, bytes);
  }
}

async function flood(count: number, address: string, bytes: number, concurrency = 10): Promise<(Answer | 'reset')[]> {
  const answers: (Answer | 'reset')[] = [];
  for (let i = 0; i < count; i += concurrency) {
    answers.push(
      ...(await Promise.all(Array.from({ length: Math.min(concurrency, count - i) }, (_, j) => badRequest(i + j, address, bytes)))),
    );
  }
  return answers;
}

describe('requests with bad credentials', () => {
  it('cost a bounded number of queries, the same for 200 requests as for 1,000, even with large bodies', async () => {
    const address = newAddress();
    const start = queries.mock.calls.length;
    const first = await flood(200, address, 256 * 1024);
    const afterFirst = queries.mock.calls.length;
    const rest = await flood(800, address, 256 * 1024);
    const afterAll = queries.mock.calls.length;
    // The limit, plus lookups already under way (up to the concurrency) when the block lands.
    expect(afterFirst - start).toBeLessThanOrEqual(LIMIT + 10);
    // Blocked: not one more query however many more come.
    expect(afterAll - afterFirst).toBe(0);
    const answers = [...first, ...rest].filter((a): a is Answer => a !== 'reset');
    // Every answer is a Kling refusal: 401 while under the limit, 429/1302 with Retry-After after it.
    for (const a of answers) expect([401, 429]).toContain(a.status);
    expect(answers.filter((a) => a.status === 401).length).toBeLessThanOrEqual(LIMIT + 10);
    const limited = answers.filter((a) => a.status === 429);
    expect(limited.length).toBeGreaterThan(900);
    for (const a of limited) expect([a.body.code, Number(a.retryAfter) >= 1]).toEqual([1302, true]);
  });

  it('are refused before any body is read: an unparseable or oversized body still answers 401', async () => {
    const xff = { 'x-forwarded-for': newAddress() };
    const bad = { ...xff, ...bearer(newApiKey()), 'content-type': 'application/json' };
    const garbage = await request(h.url).post('/v1/images/generations').set(bad).send('{not json');
    expect([garbage.status, garbage.body.code]).toEqual([401, 1002]);
    const oversized = await post('/v1/images/generations', { ...xff, authorization: `Bearer ${newApiKey()}` }, 16 * 1024 * 1024);
    expect(oversized === 'reset' ? 'reset' : [oversized.status, oversized.body.code]).toEqual([401, 1002]);
    const task = randomUUID();
    const callback = await request(h.url)
      .post(`/callbacks/kling/${task}/${randomBytes(32).toString('base64url')}`)
      .set({ ...xff, 'content-type': 'application/json' })
      .send('{not json');
    expect([callback.status, callback.body.code]).toEqual([401, 1002]);
  });

  it('with a malformed key never reach the database', async () => {
    const before = queries.mock.calls.length;
    for (let i = 0; i < 50; i++) {
      const res = await request(h.url)
        .get('/v1/images/generations')
        .set({ 'x-forwarded-for': newAddress(), authorization: `Bearer kt_${randomBytes(29).toString('hex').slice(0, 38)}` });
      expect([res.status, res.body.code]).toEqual([401, 1002]);
    }
    expect(queries.mock.calls.length - before).toBe(0);
  });

  it('with an unknown well-formed key are looked up once, then refused from the negative cache', async () => {
    const unknown = newApiKey();
    const before = queries.mock.calls.length;
    for (let i = 0; i < 30; i++) {
      const res = await request(h.url)
        .get('/v1/images/generations')
        .set({ 'x-forwarded-for': newAddress(), ...bearer(unknown) });
      expect(res.status).toBe(401);
    }
    expect(queries.mock.calls.length - before).toBe(1);
  });
});

/**
 * Failures are counted after each answer (no Redis round trip before it), so the block lands a
 * moment after the answer that reached the limit: waits for it with a key that needs no lookup.
 */
async function blockLanded(address: string): Promise<void> {
  const malformed = () => `Bearer kt_${randomBytes(20).toString('hex')}`;
  await eventually(
    `${address} blocked`,
    async () =>
      (await request(h.url).get('/v1/images/generations').set({ 'x-forwarded-for': address, authorization: malformed() })).status === 429,
    5000,
  );
}

describe('an address over its failed-authentication limit', () => {
  it('is still served with a valid credential the process knows, and refused without a lookup otherwise', async () => {
    const address = newAddress();
    const known = await h.newTenant();
    const stranger = await h.newTenant();
    const list = (key: string) =>
      request(h.url)
        .get('/v1/images/generations')
        .set({ 'x-forwarded-for': address, ...bearer(key) });
    expect((await list(known.api_key)).status).toBe(200);
    await flood(LIMIT + 5, address, 100, 1);
    await blockLanded(address);
    const before = queries.mock.calls.length;
    const blocked = await list(newApiKey());
    expect([blocked.status, blocked.body.code, Number(blocked.headers['retry-after']) > 0]).toEqual([429, 1302, true]);
    // A valid key never used through this process would need a lookup: refused too, without one.
    expect((await list(stranger.api_key)).status).toBe(429);
    expect(queries.mock.calls.length - before).toBe(0);
    // The known one is served: one abusive client behind a shared address does not lock out the rest.
    expect((await list(known.api_key)).status).toBe(200);
  });

  it('does not block another client behind the same trusted proxy', async () => {
    const abusive = newAddress();
    await flood(LIMIT + 5, abusive, 100, 1);
    await blockLanded(abusive);
    const other = await request(h.url)
      .get('/v1/images/generations')
      .set({ 'x-forwarded-for': newAddress(), ...bearer(newApiKey()) });
    expect(other.status).toBe(401);
    const again = await request(h.url)
      .get('/v1/images/generations')
      .set({ 'x-forwarded-for': abusive, ...bearer(newApiKey()) });
    expect(again.status).toBe(429);
  });
});

describe('without TRUST_PROXY', () => {
  let direct: Harness;
  beforeAll(async () => (direct = await startHarness({ workers: false, env: { AUTH_FAILURES_PER_MINUTE: String(LIMIT) } })));
  afterAll(async () => direct.close());

  it('ignores X-Forwarded-For: a client cannot escape its limit by making up addresses', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < LIMIT + 5; i++) {
      const res = await request(direct.url)
        .get('/v1/images/generations')
        .set({ 'x-forwarded-for': `198.51.100.${i + 1}`, ...bearer(newApiKey()) });
      statuses.push(res.status);
    }
    expect(statuses.slice(0, LIMIT - 1).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(-3)).toEqual([429, 429, 429]);
  });
});
