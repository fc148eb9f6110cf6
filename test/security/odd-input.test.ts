import jwt from 'jsonwebtoken';
import request from 'supertest';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { isKlingRefusal, rawRequest, UNDECODABLE } from '../helpers/odd-requests';

/**
 * Odd bytes in paths, query strings and headers, one named case each: every answer a 4xx with
 * Kling's error body (400/1201 naming the parameter, 400/1200 for a malformed request), never a
 * 5xx, and never a bare answer from Node's HTTP parser.
 */
const ADMIN_TOKEN = 'odd-input-admin-token';
const BASE = '/v1/images/generations';

let h: Harness;
let key: string;
let taskId: string;

beforeAll(async () => {
  h = await startHarness({ workers: false, env: { ADMIN_TOKEN, RATE_LIMIT_PER_MINUTE: '1000000' } });
  key = (await h.newTenant()).api_key;
  const created = await request(h.url).post(BASE).set(bearer(key)).send({ prompt: 'seed' });
  taskId = created.body.data.task_id;
});
afterAll(async () => h.close());

/** The request for a route template, its `{placeholders}` filled from `fill` (already percent-encoded), 'x' where not given. */
function send(route: string, fill: Record<string, string>) {
  const [method, template] = route.split(' ');
  const path = template.replace(/\{(\w+)\}/g, (_, name: string) => fill[name] ?? 'x');
  const r = method === 'POST' ? request(h.url).post(path) : request(h.url).get(path);
  return r.set(path.startsWith('/admin') || path.startsWith('/metrics') ? bearer(ADMIN_TOKEN) : bearer(key));
}

function expectRefusal(res: request.Response, status: number, code: number, message?: RegExp) {
  expect({ status: res.status, code: res.body.code }).toEqual({ status, code });
  expect(isKlingRefusal(res.status, res.body)).toBe(true);
  if (message) expect(res.body.message).toMatch(message);
}

const TASK_ROUTES = [`GET ${BASE}/{id}`, `GET ${BASE}/{id}/events`, `POST ${BASE}/{id}/cancel`, `GET ${BASE}/{id}/deliveries`];
const ID_ROUTES: [route: string, param: string][] = [
  ...TASK_ROUTES.map((r) => [r, 'id'] as [string, string]),
  [`POST ${BASE}/{id}/deliveries/{webhook_id}/redeliver`, 'id'],
  [`POST ${BASE}/{task}/deliveries/{webhook_id}/redeliver`, 'webhook_id'],
  ['POST /callbacks/kling/{taskId}/token', 'taskId'],
];

describe('ids in the path', () => {
  it.each(ID_ROUTES)('%s: a NUL in %s is 400/1201 naming it (Postgres would refuse it with a 500)', async (route, param) => {
    for (const value of ['%00', 'a%00b']) {
      const res = await send(route, { [param]: value, task: taskId });
      expectRefusal(res, 400, 1201, new RegExp(`^${param}: must not contain the NUL character`));
    }
  });

  it.each(ID_ROUTES)('%s: %s over 256 characters is 400/1201 naming it, not cut to 256 and looked up', async (route, param) => {
    const res = await send(route, { [param]: 'a'.repeat(257), task: taskId });
    expectRefusal(res, 400, 1201, new RegExp(`^${param}: must be 1 to 256 characters`));
  });

  it.each(ID_ROUTES.filter(([route]) => !route.startsWith('POST /callbacks')))(
    '%s: %s of exactly 256 characters is well-formed: 404/1203',
    async (route, param) => {
      const res = await send(route, { [param]: 'a'.repeat(256), task: taskId });
      expectRefusal(res, 404, 1203, /not found/);
    },
  );

  it.each(ID_ROUTES)('%s: %s with escapes that are not UTF-8 is a malformed request, 400/1200', async (route, param) => {
    for (const value of UNDECODABLE) {
      const res = await send(route, { [param]: `a${value}`, task: taskId });
      expectRefusal(res, 400, 1200, /path is not valid percent-encoded UTF-8/);
    }
  });

  it('a callback token with a NUL is a wrong token like any other (401/1002)', async () => {
    expectRefusal(await request(h.url).post(`/callbacks/kling/${taskId}/%00`).send({}), 401, 1002);
  });

  it('an id past 256 characters cancels nothing, even when its first 256 are a task', async () => {
    const ext = 'e'.repeat(256);
    const created = await request(h.url).post(BASE).set(bearer(key)).send({ prompt: 'p', external_task_id: ext });
    const res = await request(h.url).post(`${BASE}/${ext}-and-more/cancel`).set(bearer(key));
    expectRefusal(res, 400, 1201, /^id: must be 1 to 256 characters/);
    const task = await h.api.db.task.findUniqueOrThrow({ where: { id: created.body.data.task_id } });
    expect({ state: task.state, cancelRequestedAt: task.cancelRequestedAt }).toEqual({ state: 'queued', cancelRequestedAt: null });
  });
});

describe('query strings', () => {
  it.each([
    ['external_task_id with a NUL', '?external_task_id=%00', /^external_task_id: must not contain the NUL character/],
    ['an empty external_task_id', '?external_task_id=', /^external_task_id: must be 1 to 256 characters/],
    ['external_task_id over 256 characters', `?external_task_id=${'e'.repeat(257)}`, /^external_task_id: must be 1 to 256 characters/],
    ['external_task_id twice', '?external_task_id=a&external_task_id=b', /^external_task_id: must be given once/],
    ['external_task_id in bracket form', '?external_task_id[]=a', /^external_task_id: must be given once/],
    ['pageNum twice', '?pageNum=1&pageNum=2', /^pageNum: must be given once/],
    ['pageSize in bracket form', '?pageSize[]=5', /^pageSize: must be given once/],
    ['pageNum with a NUL', '?pageNum=%00', /^pageNum: /],
  ])(`GET ${BASE} with %s is 400/1201 naming the parameter`, async (_name, query, message) => {
    expectRefusal(await request(h.url).get(`${BASE}${query}`).set(bearer(key)), 400, 1201, message);
  });

  it('GET ?external_task_id= with a well-formed unknown id is 404/1203', async () => {
    expectRefusal(await request(h.url).get(`${BASE}?external_task_id=nobody`).set(bearer(key)), 404, 1203);
  });

  it.each([
    ['?wait=1&wait=2', /^wait: must be given once/],
    ['?wait[]=1', /^wait: must be given once/],
    ['?wait=%00', /^wait: must be a whole number of seconds/],
  ])(`GET ${BASE}/{id}%s is 400/1201 naming wait`, async (query, message) => {
    expectRefusal(await request(h.url).get(`${BASE}/${taskId}${query}`).set(bearer(key)), 400, 1201, message);
  });

  it.each(UNDECODABLE)('a query value %s that is not UTF-8 is 400/1201 naming it, not read as U+FFFD', async (escape) => {
    for (const [path, name] of [
      [`${BASE}?external_task_id=a${escape}`, 'external_task_id'],
      [`${BASE}/${taskId}?wait=${escape}`, 'wait'],
      [`${BASE}?pageNum=${escape}`, 'pageNum'],
    ]) {
      const res = await request(h.url).get(path).set(bearer(key));
      expectRefusal(res, 400, 1201, new RegExp(`^${name}: is not valid percent-encoded UTF-8`));
    }
  });

  it.each(['/healthz', '/readyz', '/openapi.json', '/docs', '/metrics', '/admin/queues', '/no/such/route', BASE])(
    '%s refuses a query it cannot decode, keys and values alike',
    async (path) => {
      for (const [query, code] of [
        ['x=%FF', 1201],
        ['%zz=1', 1200],
      ] as const) {
        const res = await request(h.url)
          .get(`${path}?${query}`)
          .set(path.startsWith('/metrics') ? bearer(ADMIN_TOKEN) : bearer(key));
        expectRefusal(res, 400, code);
      }
    },
  );
});

describe('paths of routes without ids', () => {
  it.each([
    ['/docs/assets/%zz', 1200],
    ['/admin/queues/queue/%zz', 1200],
    ['/admin/queues/api/queues/%zz/metrics', 1200],
    ['/admin/queues/api/queues/task.submit/%00', 1201],
    ['/admin/queues/api/queues/task.submit/j{257 times}', 1201],
    ['/no/such/%E0%A4%A', 1200],
  ])('GET %s is a Kling refusal (the router and bull-board answered 500 or in their own shape)', async (path, code) => {
    expectRefusal(await send(`GET ${path.replace('j{257 times}', 'j'.repeat(257))}`, {}), 400, code);
  });
});

describe('header values', () => {
  it('Idempotency-Key with bytes outside visible ASCII is 400/1201 naming it, and creates nothing', async () => {
    const before = await h.api.db.task.count();
    for (const value of ['a\xffb', 'a b', 'k'.repeat(256)]) {
      const res = await request(h.url).post(BASE).set(bearer(key)).set('idempotency-key', value).send({ prompt: 'x' });
      expectRefusal(res, 400, 1201, /^Idempotency-Key: /);
    }
    expect(await h.api.db.task.count()).toBe(before);
  });

  it('an x-request-id with odd bytes is not echoed: the answer carries an id of its own', async () => {
    const res = await request(h.url).get('/healthz').set('x-request-id', 'req\xff\xfe-1234');
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.body.request_id).toBe(res.headers['x-request-id']);
  });

  it('Authorization with bytes outside ASCII is 401/1002', async () => {
    expectRefusal(await request(h.url).get(BASE).set('authorization', 'Bearer \xff\xfe'), 401, 1002);
  });

  it('a JWT whose issuer holds a NUL is refused with a 4xx, not a 500 from Postgres', async () => {
    const token = jwt.sign({ iss: 'a\0b', exp: Math.floor(Date.now() / 1000) + 60 }, 'any-secret', { algorithm: 'HS256' });
    const res = await request(h.url).get(BASE).set(bearer(token));
    expect(res.status).toBeLessThan(500);
    expect(isKlingRefusal(res.status, res.body)).toBe(true);
  });
});

describe('requests the HTTP parser refuses, answered in Kling shape on the raw connection', () => {
  const raw = (lines: string[]) => rawRequest(h.url, `${lines.join('\r\n')}\r\n\r\n`);
  const get = (...headers: string[]) => raw(['GET /healthz HTTP/1.1', 'Host: x', ...headers]);

  function expectRawRefusal(res: Awaited<ReturnType<typeof rawRequest>>, status: number, message: RegExp) {
    expect({ status: res.status, type: res.headers['content-type'] }).toEqual({ status, type: 'application/json; charset=utf-8' });
    expect(isKlingRefusal(res.status, res.body)).toBe(true);
    expect(res.body).toMatchObject({ code: 1200, message: expect.stringMatching(message) });
    expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.text));
    expect(res.headers['x-request-id']).toBe((res.body as { request_id: string }).request_id);
  }

  it.each([
    ['a NUL in Idempotency-Key', 'Idempotency-Key: a\0b'],
    ['a control byte in x-request-id', 'X-Request-Id: abc\x01defgh'],
    ['a NUL in Authorization', `Authorization: Bearer a\0b`],
    ['a header line without a colon', 'Broken'],
  ])('%s: 400/1200', async (_name, header) => {
    expectRawRefusal(await get(header), 400, /^malformed HTTP request/);
  });

  it.each([
    ['no method', ['GARBAGE']],
    ['an unknown HTTP version', ['GET /healthz HTTP/9.9', 'Host: x']],
    ['a space in the target', ['GET /a b HTTP/1.1', 'Host: x']],
    ['a raw NUL in the target', ['GET /a\0b HTTP/1.1', 'Host: x']],
    ['a raw byte outside ASCII in the query', [`GET ${BASE}?external_task_id=\xff HTTP/1.1`, 'Host: x']],
    ['a Content-Length that is not a number', [`POST ${BASE} HTTP/1.1`, 'Host: x', 'Content-Length: abc']],
  ])('a request line or framing with %s: 400/1200', async (_name, lines) => {
    expectRawRefusal(await raw(lines), 400, /^malformed HTTP request/);
  });

  it('headers over the limit: 431/1200', async () => {
    expectRawRefusal(await get(`X-Big: ${'a'.repeat(20_000)}`), 431, /too large/);
  });

  it('chunk extensions over the limit: 413/1200', async () => {
    // Authenticated: a refused credential is answered before any body is read.
    const head = [
      `POST ${BASE} HTTP/1.1`,
      'Host: x',
      `Authorization: Bearer ${key}`,
      'Content-Type: application/json',
      'Transfer-Encoding: chunked',
    ];
    expectRawRefusal(await rawRequest(h.url, `${head.join('\r\n')}\r\n\r\n2;${'e'.repeat(20_000)}\r\n{}\r\n0\r\n\r\n`), 413, /too large/);
  });

  it('an HTTP/1.1 request without Host: 400/1200 (HTTP/1.0 needs none)', async () => {
    expectRawRefusal(await raw(['GET /healthz HTTP/1.1', 'Connection: close']), 400, /Host/);
    const old = await raw(['GET /healthz HTTP/1.0']);
    expect(old.status).toBe(200);
  });

  it('an Expect other than 100-continue: 417/1200', async () => {
    expectRawRefusal(await get('Expect: something-else'), 417, /Expect/);
  });

  it('CONNECT: 400/1200 instead of a silently closed connection', async () => {
    expectRawRefusal(await raw(['CONNECT example.com:443 HTTP/1.1', 'Host: example.com:443']), 400, /CONNECT/);
  });

  it('a malformed second request on a kept-alive connection is refused after the first is answered', async () => {
    const res = await rawRequest(h.url, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nX-A: \0\r\n\r\n');
    expect(res.status).toBe(200);
    const second = res.text.slice(res.text.indexOf('HTTP/1.1 '));
    expect(second).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(second).toContain('"code":1200');
  });

  it('the service still answers after all of the above', async () => {
    expect((await request(h.url).get(`${BASE}/${taskId}`).set(bearer(key))).status).toBe(200);
  });
});
