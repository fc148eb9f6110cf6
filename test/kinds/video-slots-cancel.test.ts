import request from 'supertest';
import { slotsInUse } from '../../src/tasks/task-slots';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { nothingLeftToSend } from '../helpers/invariants';
import { startReceiver, type Receiver } from '../helpers/receiver';
import { recordSlotPeaks, type SlotPeaks } from '../helpers/slot-peaks';
import { createAt, FROZEN_UPSTREAM, IMAGE_PATH, moveUpstream, upstreamTaskOf, VIDEO_KINDS } from '../helpers/video';

// Slots per pool, as Kling counts them per resource-pack type, and cancel of video tasks. The
// upstream moves a task on only when the test says, so a task holds its slot until then.

jest.setTimeout(60_000);

const [TEXT_TO_VIDEO, IMAGE_TO_VIDEO] = VIDEO_KINDS;

let h: Harness;
let key: string;
let peaks: SlotPeaks;

/** A harness for the describe block, with its slot peaks recorded from its start. */
function withHarness(env: Record<string, string>) {
  beforeAll(async () => {
    h = await startHarness({ simulator: FROZEN_UPSTREAM, env });
    peaks = await recordSlotPeaks(h.config.DATABASE_URL);
  });
  afterAll(async () => {
    await peaks.drop();
    await h.close();
  });
  beforeEach(async () => void (key = (await h.newTenant()).api_key));
}

const row = (id: string) => h.api.db.task.findUniqueOrThrow({ where: { id } });
const inUse = async () => ({ image: await slotsInUse(h.api.db, 'image'), video: await slotsInUse(h.api.db, 'video') });
const sentUpstream = (id: string) =>
  h.sim.received.some((r) => r.method === 'POST' && (r.body as { external_task_id?: string }).external_task_id === id);

describe('with one video slot and the image pool free', () => {
  withHarness({ UPSTREAM_CONCURRENCY_VIDEO: '1' });

  it('submits an image task while a backlog of video tasks waits for the video slot, and never holds more than one', async () => {
    // Both video kinds share the one slot.
    const videos = [
      await createAt(h, key, TEXT_TO_VIDEO.path, TEXT_TO_VIDEO.body),
      await createAt(h, key, IMAGE_TO_VIDEO.path, IMAGE_TO_VIDEO.body),
      await createAt(h, key, TEXT_TO_VIDEO.path, TEXT_TO_VIDEO.body),
    ];
    await h.waitForTask(videos[0], (t) => t.state === 'submitted');
    for (const id of videos.slice(1)) await h.waitForTask(id, (t) => t.slotsWaitSince !== null);

    const image = await createAt(h, key, IMAGE_PATH, { prompt: 'a lighthouse', n: 3 });
    await upstreamTaskOf(h, image);
    expect(await h.waitForTask(image, (t) => t.state === 'submitted')).toMatchObject({ pool: 'image', slotsHeld: 3 });
    // The image task reached the upstream while the video backlog still waited.
    for (const id of videos.slice(1)) {
      expect(await row(id)).toMatchObject({ state: 'queued', slotsHeld: 0, slotsWaitSince: expect.any(Date) });
      expect(sentUpstream(id)).toBe(false);
    }
    expect(await inUse()).toEqual({ image: 3, video: 1 });

    // Each video task gets the slot once the one before it has ended.
    for (const id of videos) await moveUpstream(h, id, 'succeed');
    await moveUpstream(h, image, 'succeed');
    expect({ video: await peaks.read('video'), image: await peaks.read('image') }).toEqual({ video: 1, image: 3 });
    expect(await inUse()).toEqual({ image: 0, video: 0 });
  });
});

describe('with one image slot and the video pool free', () => {
  withHarness({ UPSTREAM_CONCURRENCY: '1' });

  it('submits video tasks, one video slot each, while a backlog of image tasks waits for the image slot', async () => {
    const images = [];
    for (let i = 0; i < 3; i++) images.push(await createAt(h, key, IMAGE_PATH, { prompt: `image ${i}` }));
    await h.waitForTask(images[0], (t) => t.state === 'submitted');
    for (const id of images.slice(1)) await h.waitForTask(id, (t) => t.slotsWaitSince !== null);

    const videos = [
      await createAt(h, key, TEXT_TO_VIDEO.path, TEXT_TO_VIDEO.body),
      await createAt(h, key, IMAGE_TO_VIDEO.path, IMAGE_TO_VIDEO.body),
    ];
    for (const id of videos) {
      await upstreamTaskOf(h, id);
      expect(await h.waitForTask(id, (t) => t.state === 'submitted')).toMatchObject({ pool: 'video', slotCost: 1, slotsHeld: 1 });
    }
    for (const [i, id] of videos.entries()) {
      const view = await request(h.url).get(`${VIDEO_KINDS[i].path}/${id}`).set(bearer(key));
      expect(view.body.data.tracker).toMatchObject({ state: 'submitted', slots_held: 1 });
    }
    for (const id of images.slice(1)) {
      expect(await row(id)).toMatchObject({ state: 'queued', slotsHeld: 0 });
      expect(sentUpstream(id)).toBe(false);
    }
    expect(await inUse()).toEqual({ image: 1, video: 2 });

    for (const id of [...videos, ...images]) await moveUpstream(h, id, 'succeed');
    expect({ video: await peaks.read('video'), image: await peaks.read('image') }).toEqual({ video: 2, image: 1 });
    expect(await inUse()).toEqual({ image: 0, video: 0 });
  });
});

describe('POST /v1/videos/{text2video,image2video}/{id}/cancel, with one video slot', () => {
  withHarness({ UPSTREAM_CONCURRENCY_VIDEO: '1' });
  let rx: Receiver;
  beforeEach(async () => void (rx = await startReceiver()));
  afterEach(async () => rx.close());

  const statusesOf = (id: string) => rx.received.filter((r) => r.json.task_id === id).map((r) => r.json.task_status);

  describe.each(VIDEO_KINDS)('$kind', ({ path, body }) => {
    const create = () => createAt(h, key, path, { ...body, callback_url: rx.url });
    const cancel = (id: string) => request(h.url).post(`${path}/${id}/cancel`).set(bearer(key));

    it('ends a task still queued at once: failed for the client, canceled in the extension, one webhook, never sent upstream', async () => {
      const holder = await create();
      await h.waitForTask(holder, (t) => t.state === 'submitted');
      const queued = await create();
      await h.waitForTask(queued, (t) => t.slotsWaitSince !== null);

      const res = await cancel(queued);
      expect(res.status).toBe(200);
      expect(res.body.data).toMatchObject({
        task_status: 'failed',
        task_status_msg: 'canceled by the client',
        task_result: { videos: [] },
        tracker: { state: 'canceled', failure_reason: 'canceled', slots_held: 0 },
      });
      const again = await cancel(queued);
      expect([again.status, again.body.code]).toEqual([400, 1201]);

      // The slot it waited for comes free: still nothing is sent for it.
      await moveUpstream(h, holder, 'succeed');
      await nothingLeftToSend(h);
      expect(sentUpstream(queued)).toBe(false);
      expect(statusesOf(queued)).toEqual(['failed']);
      expect(await row(queued)).toMatchObject({ state: 'failed', failureReason: 'canceled', slotsHeld: 0, upstreamTaskId: null });
      expect(await inUse()).toEqual({ image: 0, video: 0 });
    });

    it('marks a task at the upstream canceling, follows it to its end with its slot, and discards its video', async () => {
      const id = await create();
      await h.waitForTask(id, (t) => t.state === 'submitted');
      const res = await cancel(id);
      expect(res.body.data).toMatchObject({ task_status: 'submitted', tracker: { state: 'canceling', slots_held: 1 } });

      await moveUpstream(h, id, 'processing');
      // The upstream still counts the task: so do we.
      expect(await inUse()).toEqual({ image: 0, video: 1 });
      expect((await request(h.url).get(`${path}/${id}`).set(bearer(key))).body.data.tracker.state).toBe('canceling');

      const ended = await moveUpstream(h, id, 'succeed', 'failed');
      expect(ended).toMatchObject({ failureReason: 'canceled', statusMsg: 'canceled by the client', result: null, slotsHeld: 0 });
      expect((await upstreamTaskOf(h, id)).status).toBe('succeed');
      await rx.waitFor(2);
      expect(statusesOf(id)).toEqual(['processing', 'failed']);
      expect(rx.received.find((r) => r.json.task_status === 'failed')!.json).toMatchObject({
        task_result: { videos: [] },
        tracker: { state: 'canceled' },
      });
      expect(await inUse()).toEqual({ image: 0, video: 0 });
    });
  });
});
