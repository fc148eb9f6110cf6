import request from 'supertest';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { maintenanceRanSince } from '../helpers/invariants';
import { startReceiver, type Receiver } from '../helpers/receiver';
import { createAt, FROZEN_UPSTREAM, IMAGE_PATH, moveUpstream, VIDEO_KINDS } from '../helpers/video';

// Stage limits per kind through the service: a per-kind override ends tasks of that kind and no
// other. The defaults of each kind are unit-tested in stage-limits.test.ts.

const [TEXT_TO_VIDEO, IMAGE_TO_VIDEO] = VIDEO_KINDS;
const LIMIT_MS = 400;

let h: Harness;
let rx: Receiver;

beforeAll(async () => {
  // The upstream accepts every task and never starts one by itself.
  h = await startHarness({
    simulator: FROZEN_UPSTREAM,
    env: {
      TOTAL_TIMEOUT_MS_TEXT_TO_VIDEO: String(LIMIT_MS),
      START_TIMEOUT_MS_IMAGE_TO_VIDEO: String(LIMIT_MS),
      SWEEP_INTERVAL_MS: '100',
    },
  });
  rx = await startReceiver();
});
afterAll(async () => {
  await rx.close();
  await h.close();
});

describe('per-kind stage limits', () => {
  it('end each video kind by its own override, and leave image tasks to the image limits', async () => {
    const key = (await h.newTenant()).api_key;
    // The image task is the oldest: every sweep that ends a video task has judged it too.
    const image = await createAt(h, key, IMAGE_PATH, { prompt: 'a lighthouse', callback_url: rx.url });
    const textToVideo = await createAt(h, key, TEXT_TO_VIDEO.path, { ...TEXT_TO_VIDEO.body, callback_url: rx.url });
    const imageToVideo = await createAt(h, key, IMAGE_TO_VIDEO.path, { ...IMAGE_TO_VIDEO.body, callback_url: rx.url });

    const total = await h.waitForTask(textToVideo, (t) => t.state === 'failed');
    expect(total).toMatchObject({ failureReason: 'total_timeout', slotsHeld: 0 });
    expect(total.statusMsg).toMatch(/^timed out: not finished within .+ of creation \(TOTAL_TIMEOUT_MS_TEXT_TO_VIDEO\)$/);
    // Not the other video kind's total limit: image2video is ended by its own start limit.
    const start = await h.waitForTask(imageToVideo, (t) => t.state === 'failed');
    expect(start).toMatchObject({ failureReason: 'start_timeout', slotsHeld: 0, upstreamTaskId: expect.any(String) });
    expect(start.statusMsg).toMatch(/did not start it within .+ \(START_TIMEOUT_MS_IMAGE_TO_VIDEO\)$/);

    const view = await request(h.url).get(`${TEXT_TO_VIDEO.path}/${textToVideo}`).set(bearer(key));
    expect(view.body.data).toMatchObject({
      task_status: 'failed',
      task_result: { videos: [] },
      tracker: { state: 'timed_out', failure_reason: 'total_timeout' },
    });
    await rx.waitFor(2);
    expect(rx.received.map((r) => [r.json.task_id, r.json.task_status]).sort()).toEqual(
      [
        [textToVideo, 'failed'],
        [imageToVideo, 'failed'],
      ].sort(),
    );

    // A stage-limit run that began after both ended has judged the image task, older than both, by the image limits.
    await maintenanceRanSince(h, 'tasks.fail-timed-out', Date.now());
    const stillThere = await h.api.db.task.findUniqueOrThrow({ where: { id: image } });
    expect(stillThere).toMatchObject({ state: 'submitted', failureReason: null, cancelRequestedAt: null });
    await moveUpstream(h, image, 'succeed');
  });
});
