import request from 'supertest';
import { metrics } from '../../src/observability/metrics';
import { startHarness, type Harness } from '../helpers/harness';
import { startReceiver, type Receiver } from '../helpers/receiver';
import { bearer } from '../helpers/fixtures';

const IMAGES = '/v1/images/generations';
let h: Harness;
let receiver: Receiver;

beforeAll(async () => {
  receiver = await startReceiver();
  // Ten minutes: only a failure known to be for good can end the wait within this test.
  h = await startHarness({ env: { RESULT_URLS: 'mirror', STORAGE_TIMEOUT_MS: '600000' } });
});
afterAll(async () => {
  await h.close();
  await receiver.close();
});

const fallbacks = async () => (await metrics.resultStorageFallbacks.get()).values.reduce((a, v) => a + v.value, 0);

describe('durable copies that cannot be made', () => {
  it("succeeds at once with the upstream's URLs when the upstream's file is gone (404), without waiting for STORAGE_TIMEOUT_MS", async () => {
    // The upstream's results point at files it does not have.
    h.sim.fileBaseUrl = `${h.sim.fileBaseUrl}/gone`;
    const t = await h.newTenant('carol');
    const fellBackBefore = await fallbacks();
    const id = (await request(h.url).post(IMAGES).set(bearer(t.api_key)).send({ prompt: 'fog', callback_url: receiver.url }).expect(200))
      .body.data.task_id;
    const done = await h.waitForTask(id, (x) => x.state === 'succeed');
    expect(done.filesState).toBe('upstream');
    const shown = (await request(h.url).get(`${IMAGES}/${id}`).set(bearer(t.api_key)).expect(200)).body.data;
    expect(shown.task_status).toBe('succeed');
    expect(shown.task_result.images[0].url).toContain('/gone/');
    expect(shown.task_result.images[0].url).toBe(shown.tracker.files.upstream_urls[0]);
    expect(await fallbacks()).toBe(fellBackBefore + 1);
    const deliveries = await h.api.db.webhookDelivery.findMany({ where: { taskId: id }, orderBy: { seq: 'asc' } });
    expect(deliveries.map((d) => d.eventType)).toEqual(['task.processing', 'task.succeeded']);
  });
});
