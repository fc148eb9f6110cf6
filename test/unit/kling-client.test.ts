import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import jwt from 'jsonwebtoken';
import { KlingClient } from '../../src/kling/kling-client';
import { UpstreamError } from '../../src/kling/upstream-errors';
import { createKlingSimulator, type KlingSimulator } from '../../src/simulator/kling-simulator';

/** The image generation path, where these calls go (the kind decides it). */
const IMAGES = '/v1/images/generations';
const AK = 'test-access-key';
const SK = 'test-secret-key-with-enough-entropy';

describe('KlingClient against the simulator', () => {
  let sim: KlingSimulator;
  let server: http.Server;
  let base: string;

  beforeAll(async () => {
    sim = createKlingSimulator({ accessKey: AK, secretKey: SK, processingAfterMs: 5, finishAfterMs: 5 });
    // Mounted under a prefix, as behind a proxy such as https://api.powertokens.ai/kling.
    const parent = express();
    parent.use('/kling', sim.app);
    server = parent.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/kling`;
  });
  afterAll(async () => {
    await sim.close();
    await new Promise((r) => server.close(r));
  });
  beforeEach(() => sim.reset());

  const client = (over: Partial<ConstructorParameters<typeof KlingClient>[0]> = {}) =>
    new KlingClient({ baseUrl: base, accessKey: AK, secretKey: SK, timeoutMs: 2000, ...over });

  it("signs Kling's HS256 JWT {iss, exp = now + 1800, nbf = now - 5} and reuses it while fresh", async () => {
    const c = client();
    const created = await c.createTask(IMAGES, { prompt: 'x', external_task_id: 'ext-1' });
    expect(created.task_status).toBe('submitted');
    await c.getTask(IMAGES, created.task_id);
    const [first, second] = sim.received.map((r) => r.authorization!.replace('Bearer ', ''));
    expect(sim.received.map((r) => r.path)).toEqual(['/kling/v1/images/generations', `/kling/v1/images/generations/${created.task_id}`]);
    const { header, payload } = jwt.decode(first, { complete: true }) as jwt.Jwt & { payload: jwt.JwtPayload };
    expect(header).toMatchObject({ alg: 'HS256', typ: 'JWT' });
    const now = Math.floor(Date.now() / 1000);
    expect(payload.iss).toBe(AK);
    expect(payload.exp! - now).toBeGreaterThan(1790);
    expect(payload.exp! - now).toBeLessThanOrEqual(1800);
    expect(now - payload.nbf!).toBeGreaterThanOrEqual(5);
    expect(jwt.verify(first, SK, { algorithms: ['HS256'] })).toBeTruthy();
    expect(second).toBe(first);
  });

  it('renews the token before it expires', async () => {
    const c = client();
    await c.createTask(IMAGES, { prompt: 'x' });
    const realNow = Date.now;
    // 26 minutes later: less than the renewal margin is left on the first token.
    jest.spyOn(Date, 'now').mockImplementation(() => realNow() + 26 * 60 * 1000);
    try {
      await c.createTask(IMAGES, { prompt: 'y' }).catch(() => undefined);
    } finally {
      jest.restoreAllMocks();
    }
    const [a, b] = sim.received.map((r) => jwt.decode(r.authorization!.replace('Bearer ', '')) as jwt.JwtPayload);
    expect(b.exp! - a.exp!).toBeGreaterThanOrEqual(26 * 60 - 1);
  });

  it('sends a plain bearer key when that is the credential', async () => {
    const plain = createKlingSimulator({ apiKey: 'plain-key' });
    const url = await plain.listen();
    try {
      await new KlingClient({ baseUrl: url, apiKey: 'plain-key', timeoutMs: 2000 }).createTask(IMAGES, { prompt: 'x' });
      expect(plain.received[0].authorization).toBe('Bearer plain-key');
    } finally {
      await plain.close();
    }
  });

  it('classifies upstream refusals by business code and carries the upstream message', async () => {
    sim.faults.createErrors.push({ http: 429, code: 1102, message: 'resource pack exhausted' });
    const err = await client()
      .createTask(IMAGES, { prompt: 'x' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ kind: 'rejected', retryable: false, code: 1102, httpStatus: 429, message: 'resource pack exhausted' });
    const bad = await new KlingClient({ baseUrl: base, apiKey: 'wrong', timeoutMs: 2000 })
      .createTask(IMAGES, { prompt: 'x' })
      .catch((e: unknown) => e);
    expect(bad).toMatchObject({ kind: 'rejected', code: 1002 });
  });

  it('gives up on a hanging upstream after the request timeout, as a retryable error', async () => {
    sim.faults.hang = true;
    const err = await client({ timeoutMs: 200 })
      .createTask(IMAGES, { prompt: 'x' })
      .catch((e: unknown) => e);
    sim.faults.hang = false;
    expect(err).toMatchObject({ kind: 'timeout', retryable: true });
  });

  it('calls an unreachable upstream a retryable network error', async () => {
    const err = await new KlingClient({ baseUrl: 'http://127.0.0.1:1', apiKey: 'k', timeoutMs: 2000 })
      .createTask(IMAGES, { prompt: 'x' })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'network', retryable: true });
  });

  it('finds a task by external_task_id, and answers null for one the upstream does not know', async () => {
    const c = client();
    const created = await c.createTask(IMAGES, { prompt: 'x', external_task_id: 'mine-42' });
    expect((await c.findByExternalId(IMAGES, 'mine-42'))?.task_id).toBe(created.task_id);
    expect(await c.findByExternalId(IMAGES, 'nobody')).toBeNull();
    expect(await c.getTask(IMAGES, '123')).toBeNull();
  });
});

describe('KlingClient against a misbehaving server', () => {
  let server: http.Server;
  let base: string;
  let answer: (res: http.ServerResponse) => void;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => answer(res));
    });
    server.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const call = () =>
    new KlingClient({ baseUrl: base, apiKey: 'k', timeoutMs: 300 })
      .createTask(IMAGES, { prompt: 'x' })
      .catch((e: unknown) => e as UpstreamError);

  it('does not follow a redirect: a retryable network error naming it', async () => {
    answer = (res) => res.writeHead(302, { location: 'http://elsewhere.example/v1' }).end();
    const err = await call();
    expect(err).toMatchObject({ kind: 'network', retryable: true });
    expect(err.message).toContain('HTTP 302 to http://elsewhere.example/v1');
  });

  it('bounds the whole exchange: an answer whose body never ends is given up at the deadline', async () => {
    // Headers and half a body, then nothing: without one deadline over the body too, this hangs.
    answer = (res) => res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' }).write('{"code":0,');
    const err = await call();
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ kind: 'server', retryable: true });
  });

  it("carries the upstream's Retry-After with a throttling answer", async () => {
    answer = (res) =>
      res
        .writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' })
        .end(JSON.stringify({ code: 1302, message: 'rate limited', request_id: 'r' }));
    expect(await call()).toMatchObject({ kind: 'rate_limited', httpStatus: 429, code: 1302, retryAfterSec: 7 });
  });
});
