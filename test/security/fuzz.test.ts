import fc from 'fast-check';
import request from 'supertest';
import { pngBase64 } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { isKlingRefusal, rawRequest, UNDECODABLE } from '../helpers/odd-requests';

/**
 * Thousands of random and mutated requests: bodies at the create and callback endpoints, odd paths,
 * query strings and header values at every route. Never a 5xx, every refusal a Kling-shaped error,
 * and refused creates touch neither the database nor the upstream.
 */
jest.setTimeout(300_000);

/**
 * Runs per property are sized for `npm test` (a few thousand requests in all); FUZZ_SCALE=10 runs
 * ten times as many, for a deeper search than every test run can afford.
 */
const SCALE = Number(process.env.FUZZ_SCALE ?? '1') || 1;
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));

let h: Harness;
let key: string;
let taskId: string;
let callbackUrl: string;
const ADMIN_TOKEN = 'fuzz-admin-token-0123456789';

beforeAll(async () => {
  h = await startHarness({ env: { RATE_LIMIT_PER_MINUTE: '1000000', ADMIN_TOKEN } });
  key = (await h.newTenant()).api_key;
  const res = await request(h.url).post('/v1/images/generations').set('authorization', `Bearer ${key}`).send({ prompt: 'seed' });
  taskId = res.body.data.task_id;
  const task = await h.waitForTask(taskId, (t) => t.state === 'succeed');
  callbackUrl = `/callbacks/kling/${task.id}/${h.api.callbackTokens.forTask(task.id)}`;
  await h.sim.settle();
});
afterAll(async () => h.close());

const VALID = {
  model_name: 'kling-v3',
  prompt: 'a fox',
  negative_prompt: 'blur',
  n: 2,
  aspect_ratio: '16:9',
  resolution: '1k',
  image_fidelity: 0.5,
  watermark_info: { enabled: true },
  callback_url: 'https://client.example/hook',
  external_task_id: 'ext',
};
const SMALL_PNG = pngBase64(300, 300);

/** A valid body with one field replaced by something random (or removed, or a new field). */
const mutatedBody = fc.oneof(
  fc
    .record({
      field: fc.constantFrom(
        ...Object.keys(VALID),
        'image',
        'image_reference',
        'element_list',
        'human_fidelity',
        '__proto__',
        'constructor',
        'x',
      ),
      value: fc.anything(),
    })
    .map(({ field, value }) => ({ ...VALID, [field]: value })),
  fc.constantFrom(...Object.keys(VALID)).map((f) => Object.fromEntries(Object.entries(VALID).filter(([k]) => k !== f))),
  fc
    .record({
      image: fc.oneof(
        fc.string(),
        fc.base64String(),
        fc.constant(`data:image/png;base64,${SMALL_PNG}`),
        fc.constant(SMALL_PNG.slice(0, 200)),
      ),
    })
    .map((x) => ({ prompt: 'p', ...x })),
  fc.anything(),
  fc.jsonValue(),
);

/** Percent-encodes a string's UTF-8 bytes but the unreserved ones, as a client's encoder would (a lone surrogate becomes U+FFFD). */
const percentEncoded = (s: string) =>
  [...Buffer.from(s, 'utf8')]
    .map((b) => (/[A-Za-z0-9._~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0')}`))
    .join('');

/** Pieces of a path segment or query part: NUL, escapes that do not decode, any Unicode, separators, ids at and past the limit. */
const oddPiece = fc.oneof(
  fc.constantFrom(...UNDECODABLE, '%00', '%2F', '%25', '%20', '+', '.', '..', '[]', '[x]'),
  fc.string({ unit: 'binary', maxLength: 6 }).map(percentEncoded),
  fc.string({ unit: 'binary-ascii', maxLength: 6 }).map(percentEncoded),
  fc.constantFrom('a'.repeat(256), 'a'.repeat(257), 'x'),
);
const oddText = fc.array(oddPiece, { minLength: 1, maxLength: 4 }).map((pieces) => pieces.join(''));
/** A query string: the parameters the routes read (plain, repeated, bracketed) and odd ones, with odd values or none. */
const oddQuery = fc
  .array(
    fc.tuple(
      fc.oneof(fc.constantFrom('external_task_id', 'pageNum', 'pageSize', 'wait', 'wait[]', 'pageNum[0]'), oddText),
      fc.option(oddText),
    ),
    {
      minLength: 1,
      maxLength: 4,
    },
  )
  .map((pairs) => pairs.map(([k, v]) => (v === null ? k : `${k}=${v}`)).join('&'));

/**
 * Every route the app serves; {a} and {b} are odd text, {q} an odd query, {task} the finished seed
 * task. Under bull-board's API, a well-formed unknown queue or job is bull-board's own answer (its UI
 * reads it), so there the text is made odd for sure (a NUL).
 */
const ROUTES = [
  'GET /v1/images/generations/{a}?{q}',
  'GET /v1/images/generations/{a}/events?{q}',
  'POST /v1/images/generations/{a}/cancel?{q}',
  'GET /v1/images/generations/{a}/deliveries?{q}',
  'POST /v1/images/generations/{a}/deliveries/{b}/redeliver?{q}',
  'POST /v1/images/generations/{task}/deliveries/{b}/redeliver',
  'GET /v1/images/generations?{q}',
  'GET /v1/images/generations/{task}?{q}',
  'POST /v1/images/generations?{q}',
  'POST /callbacks/kling/{a}/{b}?{q}',
  'POST /callbacks/kling/{task}/{b}',
  'GET /healthz?{q}',
  'GET /readyz?{q}',
  'GET /openapi.json?{q}',
  'GET /docs?{q}',
  'GET /docs/assets/{a}?{q}',
  'GET /metrics?{q}',
  'GET /admin/queues?{q}',
  'GET /admin/queues/queue/{a}?{q}',
  'GET /admin/queues/api/queues/{a}%00/{b}?{q}',
  'PUT /admin/queues/api/queues/task.submit/retry/{a}%00',
  'GET /{a}/{b}?{q}',
  'DELETE /v1/images/generations/{a}?{q}',
];

async function counts() {
  return {
    tasks: await h.api.db.task.count(),
    events: await h.api.db.taskEvent.count(),
    submitJobs: await h.api.queues.submit.count(),
    upstream: h.sim.received.length,
  };
}

describe('fuzzed requests', () => {
  it('create: random and mutated bodies never cause a 5xx; refusals are Kling-shaped and change nothing', async () => {
    // Accepted tasks are deleted at once; held in the queue, their jobs cannot reach the upstream
    // while a later refusal is being checked (and a refusal that enqueued a job would show).
    await h.api.queues.submit.pause();
    await fc.assert(
      fc.asyncProperty(mutatedBody, async (body) => {
        const before = await counts();
        const res = await request(h.url)
          .post('/v1/images/generations')
          .set('authorization', `Bearer ${key}`)
          .set('content-type', 'application/json')
          .send(JSON.stringify(body) ?? 'null');
        expect(res.status).toBeLessThan(500);
        if (res.status !== 200) {
          expect(isKlingRefusal(res.status, res.body)).toBe(true);
          expect(await counts()).toEqual(before);
        } else {
          expect(res.body.code).toBe(0);
          await h.api.db.task.deleteMany({ where: { id: res.body.data.task_id } });
        }
      }),
      { numRuns: runs(600) },
    );
    await h.api.queues.submit.resume();
    // Their jobs run now (and find no task): let them finish before the next property counts jobs.
    while ((await h.api.queues.submit.count()) > 0) await new Promise((r) => setTimeout(r, 20));
  });

  it('create: random raw bytes, content types and headers never cause a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ maxLength: 300 }),
        fc.constantFrom(
          'application/json',
          'text/plain',
          'application/x-www-form-urlencoded',
          'application/json; charset=utf-16',
          'multipart/form-data',
        ),
        fc.oneof(
          fc.constant(`Bearer ${key}`),
          fc.string(),
          fc.constant('Bearer'),
          fc.constant(`Bearer ${key} extra`),
          fc.constant('Bearer a.b.c'),
        ),
        async (raw, type, auth) => {
          const before = await counts();
          const res = await request(h.url)
            .post('/v1/images/generations')
            .set('authorization', auth.replace(/[\r\n]/g, ''))
            .set('content-type', type)
            .send(raw);
          expect(res.status).toBeLessThan(500);
          if (res.status !== 200) {
            expect(isKlingRefusal(res.status, res.body)).toBe(true);
            expect(await counts()).toEqual(before);
          } else {
            await h.api.db.task.deleteMany({ where: { id: res.body.data.task_id } });
          }
        },
      ),
      { numRuns: runs(300) },
    );
  });

  it('query and list: random ids, paging values and query strings never cause a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ maxLength: 400 }),
        fc.string({ maxLength: 20 }),
        fc.string({ maxLength: 20 }),
        async (id, pageNum, pageSize) => {
          const byId = await request(h.url)
            .get(`/v1/images/generations/${encodeURIComponent(id || 'x')}`)
            .set('authorization', `Bearer ${key}`);
          expect(byId.status).toBeLessThan(500);
          if (byId.status !== 200) expect(isKlingRefusal(byId.status, byId.body)).toBe(true);
          const list = await request(h.url)
            .get(`/v1/images/generations?pageNum=${encodeURIComponent(pageNum)}&pageSize=${encodeURIComponent(pageSize)}`)
            .set('authorization', `Bearer ${key}`);
          expect(list.status).toBeLessThan(500);
          if (list.status !== 200) expect(isKlingRefusal(list.status, list.body)).toBe(true);
        },
      ),
      { numRuns: runs(300) },
    );
  });

  it('callback: random bodies, tokens and ids never cause a 5xx nor change a finished task', async () => {
    const before = await h.api.db.task.findUniqueOrThrow({ where: { id: taskId } });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.anything(),
          fc.record({
            task_id: fc.oneof(fc.string(), fc.constant(before.upstreamTaskId)),
            task_status: fc.oneof(fc.string(), fc.constantFrom('failed', 'processing', 'succeed')),
            updated_at: fc.oneof(fc.integer(), fc.double()),
          }),
        ),
        fc.boolean(),
        fc.string({ maxLength: 60 }),
        async (body, rightToken, junk) => {
          const url = rightToken ? callbackUrl : `/callbacks/kling/${encodeURIComponent(junk || 'x')}/${encodeURIComponent(junk || 'y')}`;
          const res = await request(h.url)
            .post(url)
            .set('content-type', 'application/json')
            .send(JSON.stringify(body) ?? 'null');
          expect(res.status).toBeLessThan(500);
          if (res.status !== 200) expect(isKlingRefusal(res.status, res.body)).toBe(true);
        },
      ),
      { numRuns: runs(400) },
    );
    const after = await h.api.db.task.findUniqueOrThrow({ where: { id: taskId } });
    expect({ state: after.state, result: after.result, seq: after.eventSeq }).toEqual({
      state: before.state,
      result: before.result,
      seq: before.eventSeq,
    });
  });

  it('callback: random bodies against tasks still in flight never cause a 5xx, and every write stays consistent', async () => {
    h.sim.faults.loseCallbacks = true;
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await request(h.url)
        .post('/v1/images/generations')
        .set('authorization', `Bearer ${key}`)
        .send({ prompt: `live ${i}`, n: 1 + (i % 2) });
      ids.push(res.body.data.task_id);
    }
    const tasks = await Promise.all(ids.map((id) => h.waitForTask(id, (t) => t.upstreamTaskId !== null)));
    const time = fc.oneof(
      fc.integer(),
      fc.double(),
      fc.constantFrom(1e30, -1, 0, 2 ** 63, 1.5e12, Date.now(), Date.now() + 2 * 86_400_000, Number.MAX_SAFE_INTEGER),
      fc.string(),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.nat(tasks.length - 1),
        fc.record(
          {
            task_id: fc.oneof(fc.string(), fc.constant('<upstream>')),
            task_status: fc.oneof(fc.string(), fc.constantFrom('submitted', 'processing', 'succeed', 'failed')),
            task_status_msg: fc.oneof(fc.string(), fc.constant(null)),
            task_result: fc.oneof(
              fc.anything(),
              fc.record({ images: fc.array(fc.record({ index: fc.anything(), url: fc.anything() }), { maxLength: 3 }) }),
            ),
            created_at: time,
            updated_at: time,
          },
          { requiredKeys: [] },
        ),
        async (i, raw) => {
          const t = tasks[i];
          const body = raw.task_id === '<upstream>' ? { ...raw, task_id: t.upstreamTaskId } : raw;
          const res = await request(h.url)
            .post(`/callbacks/kling/${t.id}/${h.api.callbackTokens.forTask(t.id)}`)
            .set('content-type', 'application/json')
            .send(JSON.stringify(body));
          expect(res.status).toBeLessThan(500);
          if (res.status !== 200) expect(isKlingRefusal(res.status, res.body)).toBe(true);
        },
      ),
      { numRuns: runs(250) },
    );
    h.sim.faults.loseCallbacks = false;
    // Whatever was applied left each task consistent: events in order, slots only while unfinished,
    // no upstream time in the future, and the slot counter equal to what the tasks hold.
    const dayAhead = BigInt(Date.now() + 86_400_000);
    for (const t of await h.api.db.task.findMany({ where: { id: { in: ids } }, include: { events: { orderBy: { seq: 'asc' } } } })) {
      expect(t.events.map((e) => e.seq)).toEqual(t.events.map((_, k) => k + 1));
      expect(t.eventSeq).toBe(t.events.length);
      if (t.state === 'succeed' || t.state === 'failed') expect(t.slotsHeld).toBe(0);
      if (t.upstreamUpdatedAt !== null) expect(t.upstreamUpdatedAt < dayAhead).toBe(true);
    }
    const { rows } = await h.api.db.sql<{ counter: number; tasks: number }>(
      'SELECT (SELECT coalesce(sum(held), 0) FROM slot_counts)::int AS counter, (SELECT coalesce(sum(slots_held), 0) FROM tasks)::int AS tasks',
    );
    expect(rows[0].counter).toBe(rows[0].tasks);
  });

  it('every route: odd paths and query strings never cause a 5xx; every refusal is Kling-shaped', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ROUTES), oddText, oddText, oddQuery, async (route, a, b, q) => {
        const [method, template] = route.split(' ');
        const path = template
          .replace('{a}', () => a)
          .replace('{b}', () => b)
          .replace('{q}', () => q)
          .replace('{task}', taskId);
        const admin = path.startsWith('/admin') || path.startsWith('/metrics');
        const verb = method.toLowerCase() as 'get' | 'post' | 'put' | 'delete';
        const client = request(h.url);
        const res = await client[verb](path)
          .set('authorization', `Bearer ${admin ? ADMIN_TOKEN : key}`)
          .set('content-type', 'application/json')
          .send(method === 'GET' ? undefined : '{}');
        expect(res.status).toBeLessThan(500);
        if (res.status >= 300) {
          expect(res.headers['content-type']).toMatch(/^application\/json/);
          expect(isKlingRefusal(res.status, res.body)).toBe(true);
        }
      }),
      { numRuns: runs(500) },
    );
  });

  it('every header value a client can send (Idempotency-Key, x-request-id, Authorization) never causes a 5xx', async () => {
    // Visible ASCII, space and the bytes above them: what Node's HTTP client lets through (Node's parser refuses the rest).
    const headerValue = fc.string({
      unit: fc
        .integer({ min: 0x20, max: 0xff })
        .filter((c) => c !== 0x7f)
        .map((c) => String.fromCharCode(c)),
      maxLength: 300,
    });
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('idempotency-key', 'x-request-id', 'authorization'),
        fc.oneof(
          headerValue,
          headerValue.map((v) => `Bearer ${v}`),
        ),
        fc.constantFrom('POST /v1/images/generations', 'GET /v1/images/generations/{task}', 'GET /healthz', 'GET /metrics'),
        async (name, value, route) => {
          const [method, path] = route.replace('{task}', taskId).split(' ');
          const r = method === 'POST' ? request(h.url).post(path).set('content-type', 'application/json') : request(h.url).get(path);
          const res = await r
            .set('authorization', `Bearer ${path === '/metrics' ? ADMIN_TOKEN : key}`)
            .set(name, value)
            .send(method === 'POST' ? '{}' : undefined);
          expect(res.status).toBeLessThan(500);
          if (res.status >= 300) expect(isKlingRefusal(res.status, res.body)).toBe(true);
          // A caller's request id is echoed only when it is plain.
          expect(res.headers['x-request-id']).toMatch(/^[A-Za-z0-9._-]{8,128}$/);
        },
      ),
      { numRuns: runs(200) },
    );
  });

  it('header values with bytes Node refuses (NUL, controls) get a Kling-shaped 400 on the raw connection', async () => {
    const control = fc
      .integer({ min: 0, max: 0x1f })
      .filter((c) => c !== 0x09 && c !== 0x0a && c !== 0x0d)
      .map((c) => String.fromCharCode(c));
    const withControl = fc
      .tuple(fc.string({ maxLength: 20 }), fc.oneof(control, fc.constant('\x7f')), fc.string({ maxLength: 20 }))
      .map(([x, c, y]) => `${x}${c}${y}`);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('Idempotency-Key', 'X-Request-Id', 'Authorization', 'Content-Type'),
        withControl,
        async (name, value) => {
          const res = await rawRequest(
            h.url,
            `GET /v1/images/generations/${taskId} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${name}: ${value}\r\n\r\n`,
          );
          expect(res.status).toBe(400);
          expect(isKlingRefusal(res.status, res.body)).toBe(true);
        },
      ),
      { numRuns: runs(100) },
    );
  });
});
