import fc from 'fast-check';
import request from 'supertest';
import { pngBase64 } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';

/**
 * Thousands of random and mutated requests at the create, query, list and callback endpoints:
 * never a 5xx, every refusal a Kling-shaped error, and refused requests touch neither the database
 * nor the upstream.
 */
jest.setTimeout(300_000);

let h: Harness;
let key: string;
let taskId: string;
let callbackUrl: string;

beforeAll(async () => {
  h = await startHarness({ env: { RATE_LIMIT_PER_MINUTE: '1000000' } });
  key = (await h.newTenant()).api_key;
  const res = await request(h.url).post('/v1/images/generations').set('authorization', `Bearer ${key}`).send({ prompt: 'seed' });
  taskId = res.body.data.task_id;
  const task = await h.waitForTask(taskId, (t) => t.state === 'succeed');
  callbackUrl = `/callbacks/kling/${task.id}/${task.callbackToken}`;
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

/** True when the answer is a Kling refusal: 4xx with {code != 0, message, request_id}. */
function isKlingRefusal(res: request.Response): boolean {
  const b = res.body as { code?: unknown; message?: unknown; request_id?: unknown };
  return (
    res.status >= 400 &&
    res.status < 500 &&
    typeof b.code === 'number' &&
    b.code !== 0 &&
    typeof b.message === 'string' &&
    typeof b.request_id === 'string'
  );
}

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
          expect(isKlingRefusal(res)).toBe(true);
          expect(await counts()).toEqual(before);
        } else {
          expect(res.body.code).toBe(0);
          await h.api.db.task.deleteMany({ where: { id: res.body.data.task_id } });
        }
      }),
      { numRuns: 1200 },
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
            expect(isKlingRefusal(res)).toBe(true);
            expect(await counts()).toEqual(before);
          } else {
            await h.api.db.task.deleteMany({ where: { id: res.body.data.task_id } });
          }
        },
      ),
      { numRuns: 600 },
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
          if (byId.status !== 200) expect(isKlingRefusal(byId)).toBe(true);
          const list = await request(h.url)
            .get(`/v1/images/generations?pageNum=${encodeURIComponent(pageNum)}&pageSize=${encodeURIComponent(pageSize)}`)
            .set('authorization', `Bearer ${key}`);
          expect(list.status).toBeLessThan(500);
          if (list.status !== 200) expect(isKlingRefusal(list)).toBe(true);
        },
      ),
      { numRuns: 600 },
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
          if (res.status !== 200) expect(isKlingRefusal(res)).toBe(true);
        },
      ),
      { numRuns: 800 },
    );
    const after = await h.api.db.task.findUniqueOrThrow({ where: { id: taskId } });
    expect({ state: after.state, images: after.images, seq: after.eventSeq }).toEqual({
      state: before.state,
      images: before.images,
      seq: before.eventSeq,
    });
  });
});
