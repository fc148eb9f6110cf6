import request from 'supertest';
import { startHarness, type Harness } from '../helpers/harness';
import { bearer, pngBase64 } from '../helpers/fixtures';

let h: Harness;
let key: string;
const square = pngBase64(300, 300);

beforeAll(async () => {
  h = await startHarness();
  key = (await h.newTenant()).api_key;
});
afterAll(async () => {
  await h.close();
});

const post = (body: unknown) =>
  request(h.url)
    .post('/v1/images/generations')
    .set(bearer(key))
    .send(body as object);

/**
 * Proves nothing was written and nothing is on its way upstream. The answer comes after the commit,
 * so the counts are final; only a submit job sends a task upstream, and none is left to run.
 */
async function expectNothingStoredOrSent() {
  expect(await h.api.db.task.count()).toBe(0);
  expect(await h.api.db.taskEvent.count()).toBe(0);
  const jobs = await h.api.queues.submit.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
  expect(jobs).toEqual({ waiting: 0, active: 0, delayed: 0, prioritized: 0 });
  expect(h.sim.received).toEqual([]);
}

// [case, body, field named in the message]
const refused: [string, unknown, string][] = [
  ['prompt missing', {}, 'prompt'],
  ['prompt blank', { prompt: '   ' }, 'prompt'],
  ['prompt over 2500 characters', { prompt: 'a'.repeat(2501) }, 'prompt'],
  ['prompt not a string', { prompt: 42 }, 'prompt'],
  ['model_name not configured', { prompt: 'x', model_name: 'kling-v1' }, 'model_name'],
  ['negative_prompt over 2500', { prompt: 'x', negative_prompt: 'n'.repeat(2501) }, 'negative_prompt'],
  ['negative_prompt with image', { prompt: 'x', image: 'https://example.com/a.png', negative_prompt: 'blur' }, 'negative_prompt'],
  ['image with a data: prefix', { prompt: 'x', image: `data:image/png;base64,${square}` }, 'data:'],
  ['image neither base64 nor URL', { prompt: 'x', image: 'not an image!' }, 'image'],
  ['image ftp URL', { prompt: 'x', image: 'ftp://example.com/a.png' }, 'image'],
  ['image too small', { prompt: 'x', image: pngBase64(299, 400) }, 'image'],
  ['image too elongated', { prompt: 'x', image: pngBase64(300, 751) }, 'image'],
  ['image not JPEG/PNG', { prompt: 'x', image: Buffer.from('GIF89a' + 'x'.repeat(40)).toString('base64') }, 'image'],
  ['image_reference without image', { prompt: 'x', image_reference: 'subject' }, 'image_reference'],
  ['image_reference unknown', { prompt: 'x', image: 'https://example.com/a.png', image_reference: 'body' }, 'image_reference'],
  ['image_fidelity above 1', { prompt: 'x', image_fidelity: 1.01 }, 'image_fidelity'],
  ['human_fidelity below 0', { prompt: 'x', human_fidelity: -0.01 }, 'human_fidelity'],
  ['element_list entry not an integer', { prompt: 'x', element_list: [{ element_id: 1.5 }] }, 'element_list'],
  ['element_list entry with extra keys', { prompt: 'x', element_list: [{ element_id: 1, name: 'a' }] }, 'element_list'],
  ['11 elements', { prompt: 'x', element_list: Array.from({ length: 11 }, (_, i) => ({ element_id: i + 1 })) }, 'element_list'],
  [
    '10 elements plus an image',
    { prompt: 'x', image: 'https://e.com/a.png', element_list: Array.from({ length: 10 }, (_, i) => ({ element_id: i + 1 })) },
    'element_list',
  ],
  ['resolution 4k', { prompt: 'x', resolution: '4k' }, 'resolution'],
  ['n = 0', { prompt: 'x', n: 0 }, 'n'],
  ['n = 10', { prompt: 'x', n: 10 }, 'n'],
  ['n fractional', { prompt: 'x', n: 1.5 }, 'n'],
  ['n as a string', { prompt: 'x', n: '2' }, 'n'],
  ['aspect_ratio unlisted', { prompt: 'x', aspect_ratio: '5:4' }, 'aspect_ratio'],
  ['watermark_info not an object', { prompt: 'x', watermark_info: true }, 'watermark_info'],
  ['watermark_info.enabled not boolean', { prompt: 'x', watermark_info: { enabled: 'yes' } }, 'watermark_info'],
  ['callback_url not http(s)', { prompt: 'x', callback_url: 'javascript:alert(1)' }, 'callback_url'],
  ['callback_url relative', { prompt: 'x', callback_url: '/hook' }, 'callback_url'],
  ['callback_url ftp in capitals', { prompt: 'x', callback_url: 'FTP://client.example/hook' }, 'callback_url'],
  ['callback_url with credentials', { prompt: 'x', callback_url: 'HTTPS://user:secret@client.example/hook' }, 'callback_url'],
  ['external_task_id empty', { prompt: 'x', external_task_id: '' }, 'external_task_id'],
  ['external_task_id not a string', { prompt: 'x', external_task_id: 12 }, 'external_task_id'],
  ['unknown field', { prompt: 'x', seed: 7 }, 'seed'],
  ['body an array', [{ prompt: 'x' }], 'body'],
];

describe('POST /v1/images/generations refuses invalid input', () => {
  it.each(refused)('refuses %s with 400/1201 naming the field, storing and sending nothing', async (_case, body, field) => {
    const res = await post(body);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ code: 1201, message: expect.stringContaining(field), request_id: expect.any(String) });
    await expectNothingStoredOrSent();
  });

  it('refuses a body that is not JSON with a Kling error', async () => {
    const res = await request(h.url)
      .post('/v1/images/generations')
      .set(bearer(key))
      .set('content-type', 'application/json')
      .send('{"prompt":');
    expect([res.status, res.body.code]).toEqual([400, 1200]);
    const text = await request(h.url).post('/v1/images/generations').set(bearer(key)).set('content-type', 'text/plain').send('prompt=x');
    expect([text.status, text.body.code]).toEqual([415, 1200]);
    await expectNothingStoredOrSent();
  });

  it('refuses a body over the size limit with 413 and a Kling error', async () => {
    const res = await post({ prompt: 'x', image: 'A'.repeat(16 * 1024 * 1024) });
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({ code: 1200, message: expect.stringContaining('too large') });
    await expectNothingStoredOrSent();
  });
});

describe('POST /v1/images/generations accepts every documented field', () => {
  afterEach(async () => h.reset().then(async () => void (key = (await h.newTenant()).api_key)));

  it('accepts the edge values and forwards exactly what the client sent', async () => {
    const body = {
      model_name: 'kling-v3',
      prompt: 'p'.repeat(2500),
      image: pngBase64(300, 750),
      image_reference: 'face',
      image_fidelity: 0,
      human_fidelity: 1,
      element_list: Array.from({ length: 9 }, (_, i) => ({ element_id: i + 1 })),
      resolution: '2k',
      n: 9,
      aspect_ratio: '21:9',
      watermark_info: { enabled: true },
      callback_url: 'https://client.example/hook',
      external_task_id: 'edge-1',
    };
    const res = await post(body);
    expect(res.status).toBe(200);
    const task = await h.waitForTask(res.body.data.task_id, (t) => t.state !== 'queued');
    const { callback_url: _c, external_task_id: _e, ...forwarded } = body;
    expect(task.request).toEqual(forwarded);
    const sent = h.sim.received.find((r) => r.method === 'POST')!.body as Record<string, unknown>;
    expect(sent).toMatchObject(forwarded);
  });

  it('fills in the configured default model and nothing else', async () => {
    const res = await post({ prompt: 'x' });
    const task = await h.api.db.task.findUniqueOrThrow({ where: { id: res.body.data.task_id } });
    expect(task.request).toEqual({ model_name: 'kling-v3', prompt: 'x' });
    expect(task.slotCost).toBe(1);
  });

  // The create is a route of its own in front of the tasks router (src/app.ts): the path with a
  // trailing slash, which the router used to answer, must reach it too, with the same checks.
  it('takes the path with a trailing slash like the one without', async () => {
    const slash = () => request(h.url).post('/v1/images/generations/');
    const res = await slash().set(bearer(key)).send({ prompt: 'x' });
    expect([res.status, res.body.code]).toEqual([200, 0]);
    expect(await h.api.db.task.count({ where: { id: res.body.data.task_id } })).toBe(1);
    const text = await slash().set(bearer(key)).set('content-type', 'text/plain').send('prompt=x');
    expect([text.status, text.body.code]).toEqual([415, 1200]);
    const anonymous = await slash().send({ prompt: 'x' });
    expect([anonymous.status, anonymous.body.code]).toEqual([401, 1001]);
  });
});
