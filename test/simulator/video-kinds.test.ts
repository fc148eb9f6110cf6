import { imageToVideoSimulator } from '../../src/kinds/image-to-video/simulator';
import { textToVideoSimulator } from '../../src/kinds/text-to-video/simulator';
import { createKlingSimulator, type KlingSimulator } from '../../src/simulator/kling-simulator';
import { readMp4 } from '../helpers/mp4';
import { startReceiver, type Receiver } from '../helpers/receiver';

const FAST = { processingAfterMs: 20, finishAfterMs: 30 };
const KEY = 'test-key';
const IMAGE_URL = 'https://cdn.example.com/first-frame.png';
// The committed clips run at 4 frames per second.
const FRAME_SECONDS = 0.25;

const KINDS = [
  { kind: 'text-to-video', path: '/v1/videos/text2video', body: { prompt: 'a fox runs through snow' } },
  { kind: 'image-to-video', path: '/v1/videos/image2video', body: { image: IMAGE_URL, prompt: 'the fox turns its head' } },
] as const;

async function call(base: string, method: string, path: string, body?: unknown, authorization: string | null = `Bearer ${KEY}`) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (authorization !== null) headers.authorization = authorization;
  const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function download(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  return { res, body: Buffer.from(await res.arrayBuffer()) };
}

describe.each(KINDS)('Kling simulator $kind over HTTP', ({ kind, path, body: validBody }) => {
  let sim: KlingSimulator;
  let base: string;
  let receiver: Receiver;

  beforeEach(async () => {
    sim = createKlingSimulator({ ...FAST, apiKey: KEY });
    base = await sim.listen();
    receiver = await startReceiver();
  });

  afterEach(async () => {
    await sim.close();
    await receiver.close();
  });

  const create = (extra: Record<string, unknown> = {}) => call(base, 'POST', path, { ...validBody, callback_url: receiver.url, ...extra });

  it('creates a task, calls back processing then succeed with one video, readable by task id and external id', async () => {
    const created = await create({ duration: '7', external_task_id: `ext-${kind}` });
    expect(created).toMatchObject({
      status: 200,
      body: { code: 0, data: { task_status: 'submitted', task_info: { external_task_id: `ext-${kind}` } } },
    });
    const taskId: string = created.body.data.task_id;
    await sim.settle();

    expect(receiver.received.map((r) => r.json.task_status)).toEqual(['processing', 'succeed']);
    const succeed = receiver.received[1].json;
    expect(succeed.task_result).toEqual({
      videos: [{ id: expect.stringMatching(/^[0-9a-f-]{36}$/), url: expect.stringContaining(`/sim-files/${taskId}/`), duration: '7' }],
    });
    expect(sim.tasks.get(taskId)).toMatchObject({ kind, status: 'succeed' });

    const byId = await call(base, 'GET', `${path}/${taskId}`);
    const byExternalPath = await call(base, 'GET', `${path}/ext-${kind}`);
    const byExternalQuery = await call(base, 'GET', `${path}?external_task_id=ext-${kind}`);
    expect(byId.body.data).toEqual(succeed);
    expect(byExternalPath.body.data).toEqual(succeed);
    expect(byExternalQuery.body.data).toEqual(succeed);
  });

  it('serves the finished video as an MP4 of the stated duration with a video track', async () => {
    const created = await create({ duration: '7' });
    await sim.settle();
    const [video] = (await call(base, 'GET', `${path}/${created.body.data.task_id}`)).body.data.task_result.videos;
    const { res, body } = await download(video.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('video/mp4');
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    const mp4 = readMp4(body);
    expect(Math.abs(mp4.seconds - Number(video.duration))).toBeLessThanOrEqual(FRAME_SECONDS);
    expect(mp4.videoTracks).toHaveLength(1);
    expect(mp4.videoTracks[0].codec).toMatch(/^avc1\./);
    expect(mp4.videoTracks[0].frames * mp4.videoTracks[0].frameSeconds).toBeCloseTo(Number(video.duration), 3);
  });

  it('answers a Range request with 206 and exactly those bytes, and 416 past the end', async () => {
    const created = await create({});
    await sim.settle();
    const url: string = sim.tasks.get(created.body.data.task_id)!.result!.videos![0].url;
    const whole = (await download(url)).body;

    const middle = await download(url, { range: 'bytes=100-299' });
    expect(middle.res.status).toBe(206);
    expect(middle.res.headers.get('content-range')).toBe(`bytes 100-299/${whole.length}`);
    expect(middle.body.equals(whole.subarray(100, 300))).toBe(true);

    const tail = await download(url, { range: 'bytes=-50' });
    expect(tail.res.status).toBe(206);
    expect(tail.body.equals(whole.subarray(whole.length - 50))).toBe(true);

    const past = await download(url, { range: `bytes=${whole.length}-` });
    expect(past.res.status).toBe(416);
    expect(past.res.headers.get('content-range')).toBe(`bytes */${whole.length}`);
  });

  it('serves no file for a task that failed', async () => {
    sim.faults.outcome = 'failed';
    const created = await create({});
    await sim.settle();
    const taskId: string = created.body.data.task_id;
    const got = await call(base, 'GET', `${path}/${taskId}`);
    expect(got.body.data).toMatchObject({ task_status: 'failed' });
    expect(got.body.data.task_result).toBeUndefined();
    expect((await download(`${base}/sim-files/${taskId}/0.mp4`)).res.status).toBe(404);
  });

  it('lists only tasks of its kind, newest first, with Kling paging', async () => {
    for (let i = 0; i < 3; i++) await create({ external_task_id: `${kind}-${i}` });
    await call(base, 'POST', '/v1/images/generations', { prompt: 'a cat', external_task_id: 'an-image' });
    const ids = async (p: string) => (await call(base, 'GET', p)).body.data.map((t: any) => t.task_info.external_task_id);
    expect(await ids(path)).toEqual([`${kind}-2`, `${kind}-1`, `${kind}-0`]);
    expect(await ids(`${path}?pageNum=2&pageSize=2`)).toEqual([`${kind}-0`]);
    expect(await ids('/v1/images/generations')).toEqual(['an-image']);
    expect(await call(base, 'GET', `${path}?pageSize=501`)).toMatchObject({ status: 400, body: { code: 1201 } });
  });

  it('keeps its tasks out of the image path and the other video path, as upstream (404/1203)', async () => {
    const created = await create({ external_task_id: 'mine' });
    const taskId: string = created.body.data.task_id;
    const otherVideoPath = KINDS.find((k) => k.path !== path)!.path;
    for (const other of ['/v1/images/generations', otherVideoPath]) {
      for (const query of [`${other}/${taskId}`, `${other}/mine`, `${other}?external_task_id=mine`]) {
        expect(await call(base, 'GET', query)).toMatchObject({ status: 404, body: { code: 1203 } });
      }
    }
    expect((await call(base, 'GET', `${path}/${taskId}`)).status).toBe(200);
  });

  it('refuses requests without valid credentials and creates nothing', async () => {
    expect(await call(base, 'POST', path, validBody, null)).toMatchObject({ status: 401, body: { code: 1001 } });
    expect(await call(base, 'POST', path, validBody, 'Bearer wrong-key')).toMatchObject({ status: 401, body: { code: 1002 } });
    expect(await call(base, 'GET', path, undefined, 'Bearer wrong-key')).toMatchObject({ status: 401, body: { code: 1002 } });
    expect(sim.createdCount()).toBe(0);
  });

  it('treats null as absent and lets unknown fields pass, applying the defaults', async () => {
    const created = await create({ duration: null, mode: null, model_name: null, some_future_field: { x: 1 } });
    expect(created.status).toBe(200);
    await sim.settle();
    const task = sim.tasks.get(created.body.data.task_id)!;
    expect(task.result!.videos![0].duration).toBe('5');
    expect(readMp4((await download(task.result!.videos![0].url)).body).seconds).toBeCloseTo(5, 3);
  });
});

describe('Kling simulator video request validation', () => {
  const sim = createKlingSimulator({ ...FAST, apiKey: KEY, models: ['kling-image-only'], videoModels: ['kling-v2-6', 'kling-v3'] });
  let base: string;
  beforeAll(async () => {
    base = await sim.listen();
  });
  afterAll(() => sim.close());

  it.each([
    ['text2video', 'a missing prompt', {}, 'prompt'],
    ['text2video', 'an empty prompt outside multi-shot', { prompt: '' }, 'prompt'],
    ['text2video', 'a prompt over 2500 characters', { prompt: 'x'.repeat(2501) }, 'prompt'],
    ['text2video', 'a numeric duration (Kling takes a string)', { prompt: 'x', duration: 5 }, 'duration'],
    ['text2video', 'a duration past 15 s', { prompt: 'x', duration: '20' }, 'duration'],
    ['text2video', 'an image-only aspect ratio', { prompt: 'x', aspect_ratio: '4:3' }, 'aspect_ratio'],
    ['text2video', 'an unknown mode', { prompt: 'x', mode: 'ultra' }, 'mode'],
    ['text2video', 'cfg_scale above 1', { prompt: 'x', cfg_scale: 2 }, 'cfg_scale'],
    ['text2video', 'an unknown camera movement', { prompt: 'x', camera_control: { type: 'spin' } }, 'camera_control.type'],
    ['text2video', 'sound that is neither on nor off', { prompt: 'x', sound: 'loud' }, 'sound'],
    ['text2video', 'an unsupported model', { prompt: 'x', model_name: 'kling-v9' }, 'model_name'],
    ['image2video', 'neither image nor image_tail', { prompt: 'x' }, 'image'],
    ['image2video', 'a data: URL as the image', { image: 'data:image/png;base64,AAAA' }, 'image'],
    [
      'image2video',
      'a tail frame together with camera control',
      { image: IMAGE_URL, image_tail: IMAGE_URL, camera_control: { type: 'down_back' } },
      'camera_control',
    ],
    ['image2video', 'a duration under 3 s', { image: IMAGE_URL, duration: '2' }, 'duration'],
    ['image2video', 'an unsupported model', { image: IMAGE_URL, model_name: 'kling-v9' }, 'model_name'],
  ])('%s: answers 400/1201 naming the field for %s, creating nothing', async (route, _name, body, field) => {
    const before = sim.createdCount();
    const res = await call(base, 'POST', `/v1/videos/${route}`, body);
    expect([res.status, res.body.code]).toEqual([400, 1201]);
    expect(res.body.message).toContain(field);
    expect(sim.createdCount()).toBe(before);
  });

  it('takes video models from their own list: a video model is refused for images and the reverse', async () => {
    const post = async (path: string, body: object) => {
      const res = await call(base, 'POST', path, { prompt: 'x', ...body });
      return [res.status, res.body.code];
    };
    expect(await post('/v1/videos/text2video', { model_name: 'kling-v2-6' })).toEqual([200, 0]);
    expect(await post('/v1/videos/image2video', { image: IMAGE_URL })).toEqual([200, 0]);
    expect(await post('/v1/images/generations', { model_name: 'kling-v2-6' })).toEqual([400, 1201]);
    expect(await post('/v1/videos/text2video', { model_name: 'kling-image-only' })).toEqual([400, 1201]);
    expect(await post('/v1/images/generations', {})).toEqual([200, 0]);
  });
});

describe('Kling simulator concurrency per resource-pack pool', () => {
  let sim: KlingSimulator;
  let base: string;
  beforeEach(async () => {
    // Tasks hold their slots for 2 s: with FAST's 50 ms, a slow machine could see a slot freed
    // between two creates the test expects to meet a full pool.
    sim = createKlingSimulator({ processingAfterMs: 20, finishAfterMs: 2000, apiKey: KEY });
    base = await sim.listen();
  });
  afterEach(() => sim.close());

  const image = (n: number) => call(base, 'POST', '/v1/images/generations', { prompt: 'x', n });
  const textVideo = () => call(base, 'POST', '/v1/videos/text2video', { prompt: 'x' });
  const imageVideo = () => call(base, 'POST', '/v1/videos/image2video', { image: IMAGE_URL });

  it('does not refuse a video create while the image pool is full', async () => {
    sim.faults.concurrencyLimit = 2;
    sim.faults.videoConcurrencyLimit = 1;
    expect((await image(2)).status).toBe(200);
    expect(await image(1)).toMatchObject({ status: 429, body: { code: 1303 } });
    expect((await textVideo()).status).toBe(200);
    expect(await imageVideo()).toMatchObject({ status: 429, body: { code: 1303 } });
  });

  it('does not refuse an image create while the video pool is full, one slot per video task of either kind', async () => {
    sim.faults.concurrencyLimit = 9;
    sim.faults.videoConcurrencyLimit = 2;
    expect((await textVideo()).status).toBe(200);
    expect((await imageVideo()).status).toBe(200);
    expect(await textVideo()).toMatchObject({ status: 429, body: { code: 1303 } });
    expect(await imageVideo()).toMatchObject({ status: 429, body: { code: 1303 } });
    expect((await image(9)).status).toBe(200);
    expect(sim.createdCount()).toBe(3);
    // Slots are freed when tasks end.
    await sim.settle();
    expect((await imageVideo()).status).toBe(200);
  });

  it('reset restores an unlimited video pool', () => {
    sim.faults.videoConcurrencyLimit = 1;
    sim.reset();
    expect(sim.faults.videoConcurrencyLimit).toBe(Infinity);
  });
});

describe('simulator video clips', () => {
  const durations = Array.from({ length: 13 }, (_, i) => String(i + 3));

  it.each(['16:9', '9:16', '1:1'])('has, for %s, a clip of exactly each accepted duration in that aspect ratio', (ratio) => {
    const [w, h] = ratio.split(':').map(Number);
    for (const duration of durations) {
      const parsed = textToVideoSimulator.parse({ prompt: 'x', aspect_ratio: ratio, duration }, ['kling-v3']);
      if (!parsed.ok) throw new Error(parsed.message);
      const file = textToVideoSimulator.file({ taskId: '1', params: parsed.params }, '0.mp4');
      const mp4 = readMp4(file!.body);
      expect([duration, Math.abs(mp4.seconds - Number(duration)) <= FRAME_SECONDS]).toEqual([duration, true]);
      expect(mp4.videoTracks[0].width * h).toBe(mp4.videoTracks[0].height * w);
    }
  });

  it('gives an image-to-video task a 16:9 clip, since the simulator does not look at the frames', () => {
    const parsed = imageToVideoSimulator.parse({ image: IMAGE_URL, duration: '10' }, ['kling-v3']);
    if (!parsed.ok) throw new Error(parsed.message);
    const mp4 = readMp4(imageToVideoSimulator.file({ taskId: '1', params: parsed.params }, '0.mp4')!.body);
    expect(mp4.videoTracks[0].width * 9).toBe(mp4.videoTracks[0].height * 16);
    expect(mp4.seconds).toBeCloseTo(10, 3);
  });
});
