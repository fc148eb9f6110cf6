import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import jwt from 'jsonwebtoken';
import { PNG } from 'pngjs';
import { Webhook } from 'standardwebhooks';
import request from 'supertest';
import { createKlingSimulator, renderPng, type KlingSimulator } from '../../src/simulator/kling-simulator';
import { imageDimensions } from '../../src/kinds/image-generation/sim-png';

const FAST = { processingAfterMs: 20, finishAfterMs: 30 };
const AUTH = { authorization: 'Bearer test-key' };
const SECRET = 'whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI=';

interface ReceivedCallback {
  raw: string;
  body: Record<string, any>;
  headers: http.IncomingHttpHeaders;
}

/** A real HTTP server standing in for the client's callback endpoint. */
async function startReceiver(answerStatus = 200) {
  const received: ReceivedCallback[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      received.push({ raw, body: JSON.parse(raw), headers: req.headers });
      res.writeHead(answerStatus).end();
    });
  });
  const url = await listen(server);
  return {
    url: `${url}/hook`,
    received,
    statuses: () => received.map((c) => c.body.task_status),
    close: () => closeServer(server),
  };
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

async function call(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...AUTH, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}

async function fetchPng(url: string): Promise<PNG> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('image/png');
  return PNG.sync.read(Buffer.from(await res.arrayBuffer()));
}

describe('Kling simulator over HTTP', () => {
  let sim: KlingSimulator;
  let base: string;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  beforeEach(async () => {
    sim = createKlingSimulator({ ...FAST, apiKey: 'test-key' });
    base = await sim.listen();
    receiver = await startReceiver();
  });

  afterEach(async () => {
    await sim.close();
    await receiver.close();
  });

  const create = (body: Record<string, unknown>) =>
    call(base, 'POST', '/v1/images/generations', { prompt: 'a cat', callback_url: receiver.url, ...body });

  it('creates a task, calls back processing then succeed, and serves n PNGs in the aspect ratio', async () => {
    const created = await create({ n: 3, aspect_ratio: '16:9', external_task_id: 'ext-1' });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({
      code: 0,
      message: 'SUCCEED',
      data: { task_status: 'submitted', task_info: { external_task_id: 'ext-1' } },
    });
    expect(typeof created.body.request_id).toBe('string');
    const taskId: string = created.body.data.task_id;
    expect(taskId).toMatch(/^\d+$/);

    await sim.settle();

    expect(receiver.statuses()).toEqual(['processing', 'succeed']);
    const [processing, succeed] = receiver.received.map((c) => c.body);
    expect(processing.code).toBeUndefined(); // bare task object, no envelope
    expect(processing.task_id).toBe(taskId);
    expect(receiver.received[0].headers['content-type']).toBe('application/json');
    expect(processing.updated_at).toBeGreaterThan(created.body.data.updated_at);
    expect(succeed.updated_at).toBeGreaterThan(processing.updated_at);
    expect(processing.task_result).toBeUndefined();
    expect(succeed.task_result.images.map((i: { index: number }) => i.index)).toEqual([0, 1, 2]);
    for (const image of succeed.task_result.images) {
      const png = await fetchPng(image.url);
      expect(png.width * 9).toBe(png.height * 16);
    }
    expect(sim.callbacks.map((c) => [c.status, c.ok, c.httpStatus])).toEqual([
      ['processing', true, 200],
      ['succeed', true, 200],
    ]);

    const got = await call(base, 'GET', `/v1/images/generations/${taskId}`);
    expect(got.body.data).toEqual(succeed);
    expect(sim.createdCount()).toBe(1);
  });

  it('doubles the image size for resolution 2k', async () => {
    const small = await create({ aspect_ratio: '9:16' });
    const large = await create({ aspect_ratio: '9:16', resolution: '2k' });
    await sim.settle();
    const smallPng = await fetchPng(sim.tasks.get(small.body.data.task_id)!.result!.images![0].url);
    const largePng = await fetchPng(sim.tasks.get(large.body.data.task_id)!.result!.images![0].url);
    expect(smallPng.width * 16).toBe(smallPng.height * 9);
    expect(largePng.width).toBe(smallPng.width * 2);
    expect(largePng.height).toBe(smallPng.height * 2);
  });

  it('answers 404 for an image index the task does not have', async () => {
    const created = await create({ n: 1 });
    await sim.settle();
    const res = await fetch(`${base}/sim-files/${created.body.data.task_id}/1.png`);
    expect(res.status).toBe(404);
  });

  it('fails tasks with the configured message when outcome is failed', async () => {
    sim.faults.outcome = 'failed';
    const created = await create({});
    await sim.settle();
    expect(receiver.statuses()).toEqual(['processing', 'failed']);
    const got = await call(base, 'GET', `/v1/images/generations/${created.body.data.task_id}`);
    expect(got.body.data).toMatchObject({ task_status: 'failed', task_status_msg: 'Content safety check failed' });
    expect(got.body.data.task_result).toBeUndefined();
  });

  it('refuses a duplicate external_task_id without creating a task', async () => {
    expect((await create({ external_task_id: 'dup' })).status).toBe(200);
    const second = await create({ external_task_id: 'dup' });
    expect(second.status).toBe(400);
    expect(second.body).toMatchObject({ code: 1201, message: 'external_task_id already exists' });
    expect(sim.createdCount()).toBe(1);
  });

  it('answers queued create and query errors one per request, then behaves normally', async () => {
    sim.faults.createErrors.push({ http: 500, code: 5000, message: 'boom' }, { http: 429, code: 1302, message: 'slow down' });
    sim.faults.queryErrors.push({ http: 503, code: 5001, message: 'maintenance' });
    expect(await create({})).toMatchObject({ status: 500, body: { code: 5000, message: 'boom' } });
    expect(await create({})).toMatchObject({ status: 429, body: { code: 1302 } });
    const ok = await create({});
    expect(ok.status).toBe(200);
    expect(sim.createdCount()).toBe(1);
    const path = `/v1/images/generations/${ok.body.data.task_id}`;
    expect(await call(base, 'GET', path)).toMatchObject({ status: 503, body: { code: 5001 } });
    expect((await call(base, 'GET', path)).status).toBe(200);
  });

  it('answers every create with the outage error while one is set, queries as usual, and creates again once it is cleared', async () => {
    const before = await create({});
    sim.faults.createOutage = { http: 429, code: 1303, message: 'concurrency limit' };
    expect(await create({})).toMatchObject({ status: 429, body: { code: 1303, message: 'concurrency limit' } });
    sim.faults.createOutage = { http: 500, code: 5000, message: 'internal error' };
    expect(await create({})).toMatchObject({ status: 500, body: { code: 5000 } });
    expect((await call(base, 'GET', `/v1/images/generations/${before.body.data.task_id}`)).status).toBe(200);
    sim.faults.createOutage = undefined;
    expect((await create({})).status).toBe(200);
    expect(sim.createdCount()).toBe(2);
  });

  it('answers 1303 while the sum of n over unfinished tasks would exceed the limit', async () => {
    sim.faults.concurrencyLimit = 3;
    expect((await create({ n: 2 })).status).toBe(200);
    expect(await create({ n: 2 })).toMatchObject({ status: 429, body: { code: 1303 } });
    expect(sim.createdCount()).toBe(1);
    await sim.settle();
    expect((await create({ n: 3 })).status).toBe(200);
  });

  it('sends no callbacks when they are lost, while the task still finishes', async () => {
    sim.faults.loseCallbacks = true;
    const created = await create({});
    await sim.settle();
    expect(receiver.received).toHaveLength(0);
    expect(sim.callbacks).toHaveLength(0);
    expect(sim.tasks.get(created.body.data.task_id)!.status).toBe('succeed');
  });

  it('sends every callback twice when duplicating', async () => {
    sim.faults.duplicateCallbacks = true;
    await create({});
    await sim.settle();
    expect(receiver.statuses()).toEqual(['processing', 'processing', 'succeed', 'succeed']);
  });

  it('sends the processing callback after the terminal one when reordering', async () => {
    sim.faults.reorderCallbacks = true;
    await create({});
    await sim.settle();
    expect(receiver.statuses()).toEqual(['succeed', 'processing']);
    const [succeed, processing] = receiver.received.map((c) => c.body);
    expect(processing.updated_at).toBeLessThan(succeed.updated_at);
  });

  it('records failed deliveries with the receiver status or the network error', async () => {
    const failing = await startReceiver(500);
    try {
      await create({ callback_url: failing.url });
      await create({ callback_url: 'http://127.0.0.1:1/unreachable' });
      await sim.settle();
      const byUrl = (url: string) => sim.callbacks.filter((c) => c.url === url);
      expect(byUrl(failing.url).map((c) => [c.ok, c.httpStatus])).toEqual([
        [false, 500],
        [false, 500],
      ]);
      expect(byUrl('http://127.0.0.1:1/unreachable').every((c) => !c.ok && c.error)).toBe(true);
    } finally {
      await failing.close();
    }
  });

  it('records how long each callback took, and tells a timeout (5 s) from a connection error', async () => {
    // Reads requests and never answers them.
    const silent = http.createServer(() => undefined);
    const silentUrl = `${await listen(silent)}/hook`;
    let closed: Promise<void> | undefined;
    try {
      await create({});
      await create({ callback_url: silentUrl });
      const byUrl = (url: string) => sim.callbacks.filter((c) => c.url === url);
      // Once the processing callback has timed out, the server goes: the succeed one is refused or reset.
      await waitFor(() => byUrl(silentUrl).length === 1);
      closed = closeServer(silent);
      await sim.settle();
      expect(byUrl(receiver.url).map((c) => [c.status, c.ok, c.timedOut, c.durationMs >= 0])).toEqual([
        ['processing', true, false, true],
        ['succeed', true, false, true],
      ]);
      expect(byUrl(silentUrl).map((c) => [c.status, c.ok, c.timedOut, c.httpStatus])).toEqual([
        ['processing', false, true, undefined],
        ['succeed', false, false, undefined],
      ]);
      // The timeout's duration is the deadline (timers may fire a millisecond early against the wall clock).
      expect(byUrl(silentUrl)[0].durationMs).toBeGreaterThanOrEqual(4990);
      expect(byUrl(silentUrl)[1].error).toEqual(expect.any(String));
    } finally {
      await (closed ?? closeServer(silent));
    }
  });

  it('holds requests while hanging and answers them once released', async () => {
    sim.faults.hang = true;
    let answered = false;
    const pending = create({}).then((res) => {
      answered = true;
      return res;
    });
    await waitFor(() => sim.received.length === 1);
    // A later request that is not held is answered: the held one had every chance to be answered too.
    expect((await call(base, 'GET', '/v1/no-such-route')).status).toBe(404);
    expect(answered).toBe(false);
    expect(sim.createdCount()).toBe(0);
    sim.faults.hang = false;
    expect((await pending).status).toBe(200);
    expect(sim.createdCount()).toBe(1);
  });

  it('ends hung requests when the simulator closes', async () => {
    sim.faults.hang = true;
    const pending = call(base, 'GET', '/v1/images/generations');
    await waitFor(() => sim.received.length === 1);
    await sim.close();
    await expect(pending).rejects.toThrow();
  });

  it('finds a task by external_task_id in the path and in the query', async () => {
    const created = await create({ external_task_id: 'order-42' });
    // Read once it has ended: a task still moving on (20 ms to processing here) could change
    // between the two reads, and the comparison would be of two moments, not of two lookups.
    await waitFor(() => sim.tasks.get(created.body.data.task_id)?.status === 'succeed');
    const byPath = await call(base, 'GET', '/v1/images/generations/order-42');
    const byQuery = await call(base, 'GET', '/v1/images/generations?external_task_id=order-42');
    expect(byPath.body.data.task_id).toBe(created.body.data.task_id);
    expect(byQuery.body.data).toEqual(byPath.body.data);
    expect(await call(base, 'GET', '/v1/images/generations?external_task_id=nope')).toMatchObject({ status: 404, body: { code: 1203 } });
    expect(await call(base, 'GET', '/v1/images/generations/nope')).toMatchObject({
      status: 404,
      body: { code: 1203, message: 'task not found' },
    });
  });

  it('lists tasks newest first with Kling paging and rejects out-of-range pages', async () => {
    for (let i = 0; i < 5; i++) await create({ external_task_id: `e${i}` });
    const ids = async (query: string) =>
      (await call(base, 'GET', `/v1/images/generations?${query}`)).body.data.map((t: any) => t.task_info.external_task_id);
    expect(await ids('pageNum=1&pageSize=2')).toEqual(['e4', 'e3']);
    expect(await ids('pageNum=3&pageSize=2')).toEqual(['e0']);
    expect(await ids('')).toEqual(['e4', 'e3', 'e2', 'e1', 'e0']);
    for (const bad of ['pageSize=0', 'pageSize=501', 'pageNum=1001', 'pageNum=abc']) {
      expect(await call(base, 'GET', `/v1/images/generations?${bad}`)).toMatchObject({ status: 400, body: { code: 1201 } });
    }
  });

  it('lets tests force transitions, with or without a callback', async () => {
    const created = await create({ n: 2 });
    const taskId: string = created.body.data.task_id;
    sim.setTaskStatus(taskId, 'processing');
    await sim.settle(); // forced tasks no longer progress on their own
    expect(sim.tasks.get(taskId)!.status).toBe('processing');
    sim.setTaskStatus(taskId, 'succeed', { sendCallback: false });
    await sim.settle();
    expect(receiver.statuses()).toEqual(['processing']);
    expect(sim.tasks.get(taskId)!.result!.images).toHaveLength(2);
  });

  it('reset clears state and restores default faults', async () => {
    sim.faults.outcome = 'failed';
    sim.faults.createOutage = { http: 500, code: 5000, message: 'internal error' };
    await create({});
    await sim.settle();
    sim.reset();
    expect([sim.tasks.size, sim.received.length, sim.callbacks.length, sim.createdCount()]).toEqual([0, 0, 0, 0]);
    expect(sim.faults.outcome).toBe('succeed');
    expect(sim.faults.concurrencyLimit).toBe(Infinity);
    expect(sim.faults.createOutage).toBeUndefined();
  });

  it('creates the task but holds the answer while hangAfterCreate is on, apart from the hang fault', async () => {
    sim.faults.hangAfterCreate = true;
    sim.faults.hang = true;
    const pending = create({ external_task_id: 'held-answer' });
    await waitFor(() => sim.received.length === 1);
    // Held before creating: nothing exists yet. Releasing `hang` lets it create, then hold its answer.
    expect(sim.createdCount()).toBe(0);
    sim.faults.hang = false;
    await waitFor(() => sim.createdCount() === 1);
    const [task] = [...sim.tasks.values()];
    // The task runs upstream, callbacks and all, while its creator still waits for the answer.
    await waitFor(() => receiver.received.length === 2);
    expect([task.status, receiver.statuses()]).toEqual(['succeed', ['processing', 'succeed']]);
    sim.faults.hangAfterCreate = false;
    const answered = await pending;
    expect(answered).toMatchObject({ status: 200, body: { code: 0, data: { task_id: task.task_id } } });
  });
});

describe('Kling simulator authentication', () => {
  const sim = createKlingSimulator({ ...FAST, apiKey: 'plain-key', accessKey: 'AK', secretKey: 'SK' });
  afterAll(() => sim.close());
  const now = () => Math.floor(Date.now() / 1000);
  const token = (claims: object, secret = 'SK') => jwt.sign(claims, secret, { algorithm: 'HS256' });
  const list = (authorization?: string) => {
    const req = request(sim.app).get('/v1/images/generations');
    return authorization === undefined ? req : req.set('authorization', authorization);
  };

  it.each([
    ['the api key', 200, 0, 'Bearer plain-key'],
    ['a valid AK/SK token', 200, 0, `Bearer ${token({ iss: 'AK', exp: now() + 1800, nbf: now() - 5 })}`],
    ['no header', 401, 1001, undefined],
    ['an empty bearer', 401, 1001, 'Bearer '],
    ['a wrong key', 401, 1002, 'Bearer other-key'],
    ['a token signed with another secret', 401, 1002, `Bearer ${token({ iss: 'AK', exp: now() + 1800 }, 'nope')}`],
    ['a token for another access key', 401, 1002, `Bearer ${token({ iss: 'XX', exp: now() + 1800 })}`],
    ['a token without exp', 401, 1002, `Bearer ${token({ iss: 'AK' })}`],
    ['a token that is not yet valid', 401, 1003, `Bearer ${token({ iss: 'AK', exp: now() + 1800, nbf: now() + 600 })}`],
    ['an expired token', 401, 1004, `Bearer ${token({ iss: 'AK', exp: now() - 10, nbf: now() - 100 })}`],
  ])('with %s answers HTTP %s code %s', async (_name, http, code, authorization) => {
    const res = await list(authorization);
    expect(res.status).toBe(http);
    expect(res.body.code).toBe(code);
    expect(typeof res.body.request_id).toBe('string');
  });

  it('checks auth on create too, creating nothing when refused', async () => {
    const res = await request(sim.app).post('/v1/images/generations').send({ prompt: 'x' });
    expect(res.body.code).toBe(1001);
    expect(sim.createdCount()).toBe(0);
  });

  it('accepts any non-empty bearer when no credentials are configured', async () => {
    const open = createKlingSimulator(FAST);
    try {
      expect((await request(open.app).get('/v1/images/generations').set('authorization', 'Bearer anything')).status).toBe(200);
      expect((await request(open.app).get('/v1/images/generations')).body.code).toBe(1001);
    } finally {
      await open.close();
    }
  });
});

describe('Kling simulator request validation', () => {
  const sim = createKlingSimulator({ ...FAST, models: ['kling-v3', 'kling-v2'] });
  afterAll(() => sim.close());
  const post = (body: string) =>
    request(sim.app).post('/v1/images/generations').set(AUTH).set('content-type', 'application/json').send(body);

  it('answers 1200 for a body that is not a JSON object', async () => {
    for (const body of ['{"prompt":', '[1,2]', '']) {
      const res = await post(body);
      expect([res.status, res.body.code]).toEqual([400, 1200]);
    }
  });

  it.each([
    ['a missing prompt', {}, 'prompt'],
    ['a prompt over 2500 characters', { prompt: 'x'.repeat(2501) }, 'prompt'],
    ['n above 9', { prompt: 'x', n: 10 }, 'n'],
    ['a fractional n', { prompt: 'x', n: 1.5 }, 'n'],
    ['an unknown aspect ratio', { prompt: 'x', aspect_ratio: '5:4' }, 'aspect_ratio'],
    ['an unsupported model', { prompt: 'x', model_name: 'kling-v9' }, 'model_name'],
  ])('answers 1201 naming the field for %s', async (_name, body, field) => {
    const res = await post(JSON.stringify(body));
    expect([res.status, res.body.code]).toEqual([400, 1201]);
    expect(res.body.message).toContain(field);
  });

  it('applies Kling defaults and records the request as received', async () => {
    const res = await post(JSON.stringify({ prompt: 'x', model_name: 'kling-v2' }));
    expect(res.status).toBe(200);
    const task = sim.tasks.get(res.body.data.task_id)!;
    expect(task.request).toEqual({ prompt: 'x', model_name: 'kling-v2' });
    expect(res.body.data.task_info).toBeUndefined();
    const last = sim.received[sim.received.length - 1];
    expect(last).toMatchObject({
      method: 'POST',
      path: '/v1/images/generations',
      body: { prompt: 'x' },
      authorization: AUTH.authorization,
    });
  });

  it('answers 1202 for unknown API paths', async () => {
    const res = await request(sim.app).get('/v1/videos/nothing').set(AUTH);
    expect([res.status, res.body.code]).toEqual([404, 1202]);
  });
});

describe('Kling simulator signed callbacks', () => {
  it('signs every callback with Standard Webhooks headers that verify independently', async () => {
    const sim = createKlingSimulator({ ...FAST, callbackSecret: SECRET });
    const receiver = await startReceiver();
    try {
      const base = await sim.listen();
      sim.faults.duplicateCallbacks = true;
      await call(base, 'POST', '/v1/images/generations', { prompt: 'x', callback_url: receiver.url });
      await sim.settle();
      expect(receiver.received).toHaveLength(4);
      const webhook = new Webhook(SECRET);
      for (const cb of receiver.received) {
        expect(webhook.verify(cb.raw, cb.headers as Record<string, string>)).toEqual(cb.body);
        expect(() => webhook.verify(cb.raw.replace('"task_status"', '"task_statuz"'), cb.headers as Record<string, string>)).toThrow();
      }
      const ids = receiver.received.map((cb) => cb.headers['webhook-id']);
      expect(new Set(ids).size).toBe(4);
    } finally {
      await sim.close();
      await receiver.close();
    }
  });
});

describe('Kling simulator mounted under a path prefix', () => {
  it('serves the API and images under the prefix', async () => {
    const sim = createKlingSimulator(FAST);
    const parent = express();
    parent.use('/kling', sim.app);
    const server = http.createServer(parent);
    const receiver = await startReceiver();
    try {
      const origin = await listen(server);
      const created = await call(origin, 'POST', '/kling/v1/images/generations', {
        prompt: 'x',
        n: 2,
        aspect_ratio: '21:9',
        callback_url: receiver.url,
      });
      expect(created.status).toBe(200);
      await sim.settle();
      expect(receiver.statuses()).toEqual(['processing', 'succeed']);
      const images = receiver.received[1].body.task_result.images;
      expect(images[0].url.startsWith(`${origin}/kling/sim-files/`)).toBe(true);
      const png = await fetchPng(images[1].url);
      expect(png.width * 9).toBe(png.height * 21);
      expect(sim.received[0].path).toBe('/kling/v1/images/generations');
      expect((await call(origin, 'GET', `/kling/v1/images/generations/${created.body.data.task_id}`)).body.data.task_status).toBe(
        'succeed',
      );
    } finally {
      await sim.close();
      await closeServer(server);
      await receiver.close();
    }
  });
  it('ends hung requests on close even though it does not own the server', async () => {
    const sim = createKlingSimulator(FAST);
    const parent = express();
    parent.use('/kling', sim.app);
    const server = http.createServer(parent);
    try {
      const origin = await listen(server);
      sim.faults.hang = true;
      const pending = call(origin, 'GET', '/kling/v1/images/generations');
      await waitFor(() => sim.received.length === 1);
      await sim.close();
      await expect(pending).rejects.toThrow();
    } finally {
      await closeServer(server);
    }
  });
});

describe('simulator PNG rendering', () => {
  it.each(['1:1', '16:9', '4:3', '3:2', '2:3', '3:4', '9:16', '21:9'])('keeps %s exact at both resolutions', (ratio) => {
    const [w, h] = ratio.split(':').map(Number);
    for (const resolution of ['1k', '2k']) {
      const size = imageDimensions(ratio, resolution);
      expect(size.width * h).toBe(size.height * w);
      expect(Math.max(size.width, size.height)).toBeGreaterThanOrEqual(resolution === '2k' ? 600 : 300);
    }
  });

  it('renders a decodable PNG of the requested size that depends on the seed', () => {
    const a = PNG.sync.read(renderPng(40, 30, 1));
    expect([a.width, a.height]).toEqual([40, 30]);
    expect(renderPng(40, 30, 1).equals(renderPng(40, 30, 2))).toBe(false);
  });
});
