import { pngBase64 } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { FRAME_URL, postCreate, VIDEO_KINDS } from '../helpers/video';

// Kling's rules for video create bodies, refused through the real service: the unit tests of each
// rule are text-to-video.request.test.ts and image-to-video.request.test.ts.

let h: Harness;
let key: string;

beforeAll(async () => {
  // An older model beside Kling 3.0, for the rules that depend on the model.
  h = await startHarness({ env: { KLING_VIDEO_MODELS: 'kling-v3,kling-v2-6' } });
});
afterAll(async () => h.close());
// From empty: a body wrongly accepted fails its own case, not every case after it.
beforeEach(async () => {
  await h.reset();
  key = (await h.newTenant()).api_key;
});

/**
 * Nothing written (no task, event or Idempotency-Key) and nothing on its way upstream. The answer
 * comes after any commit, so the counts are final; only a submit job sends a task upstream.
 */
async function expectNothingStoredOrSent() {
  expect(await h.api.db.task.count()).toBe(0);
  expect(await h.api.db.taskEvent.count()).toBe(0);
  expect(await h.api.db.idempotencyKey.count()).toBe(0);
  const jobs = await h.api.queues.submit.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
  expect(jobs).toEqual({ waiting: 0, active: 0, delayed: 0, prioritized: 0 });
  expect(h.sim.received).toEqual([]);
}

const twoMovements = { type: 'simple', config: { pan: 2, zoom: 5 } };

// [case, body, the message: the field first]
const shared: [string, object, string | RegExp][] = [
  ['an unknown field', { resolution: '1080p' }, 'resolution: unknown field'],
  ['a duration the model does not take', { model_name: 'kling-v2-6', duration: '7' }, /^duration: must be "5" or "10" on kling-v2-6 /],
  ['a duration no model takes', { duration: '20' }, /^duration: must be a string of whole seconds/],
  [
    'camera_control simple with two movements',
    { camera_control: twoMovements },
    /^camera_control\.config: must have exactly one of .* non-zero for type "simple" \(got pan, zoom\)$/,
  ],
];

const imageToVideoOnly: [string, object, string | RegExp][] = [
  ['no image', { image: undefined }, 'image: is required (image_tail alone is not supported)'],
  [
    'image_tail with camera_control',
    { image_tail: 'https://cdn.example.com/last-frame.png', camera_control: { type: 'down_back' } },
    /^camera_control: cannot be combined with image_tail: /,
  ],
  ['a data: URL image', { image: `data:image/png;base64,${pngBase64(300, 300)}` }, 'image: must be bare base64 without a "data:" prefix'],
  ['an image under 300 px', { image: pngBase64(299, 400) }, 'image: must be at least 300 px wide and 300 px high (got 299x400)'],
];

const cases = VIDEO_KINDS.flatMap(({ kind, path, body }) =>
  [...shared, ...(kind === 'image-to-video' ? imageToVideoOnly : [])].map(
    ([name, change, message]) => [`${path}: ${name}`, path, { ...body, ...change }, message] as const,
  ),
);

describe('POST /v1/videos/{text2video,image2video} with a body Kling refuses', () => {
  it.each(cases)('%s: 400/1201 naming the field, nothing stored, nothing sent upstream', async (_name, path, body, message) => {
    const res = await postCreate(h, key, path, body, { 'idempotency-key': 'refused-create' });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ code: 1201, message: expect.any(String), request_id: expect.any(String) });
    if (typeof message === 'string') expect(res.body.message).toBe(message);
    else expect(res.body.message).toMatch(message);
    await expectNothingStoredOrSent();
  });

  it('refuses for text2video the frame fields that only image2video has', async () => {
    const res = await postCreate(h, key, '/v1/videos/text2video', { prompt: 'a fox', image: FRAME_URL });
    expect([res.status, res.body.code, res.body.message]).toEqual([400, 1201, 'image: unknown field']);
    await expectNothingStoredOrSent();
  });
});
