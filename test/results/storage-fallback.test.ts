import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { metrics } from '../../src/observability/metrics';
import { startHarness, type Harness } from '../helpers/harness';
import { startReceiver, type Receiver } from '../helpers/receiver';
import { bearer } from '../helpers/fixtures';
import { counted } from '../helpers/metrics';

const IMAGES = '/v1/images/generations';
// The store's directory cannot be written at first: a file stands where it should be.
const blocked = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kt-fallback-')), 'results');
let h: Harness;
let receiver: Receiver;

beforeAll(async () => {
  fs.writeFileSync(blocked, 'not a directory');
  receiver = await startReceiver();
  // Retries 200 ms apart (doubling): under load many fail before the store is repaired, and the next must come within the wait.
  h = await startHarness({ env: { RESULT_URLS: 'mirror', STORAGE_DIR: blocked, STORAGE_TIMEOUT_MS: '300', STORAGE_RETRY_MS: '200' } });
});
afterAll(async () => {
  await h.close();
  await receiver.close();
  fs.rmSync(path.dirname(blocked), { recursive: true, force: true });
});

const download = async (url: string) => Buffer.from(await (await fetch(url)).arrayBuffer());

describe('durable copies that keep failing', () => {
  it("keeps the task in processing while copies fail, succeeds with the upstream's URLs past STORAGE_TIMEOUT_MS, then a later retry swaps in the links without a second succeed webhook", async () => {
    const t = await h.newTenant('bob');
    const fellBackBefore = await counted(metrics.resultStorageFallbacks);
    const id = (await request(h.url).post(IMAGES).set(bearer(t.api_key)).send({ prompt: 'rain', callback_url: receiver.url }).expect(200))
      .body.data.task_id;
    const fellBack = await h.waitForTask(id, (x) => x.state === 'succeed');
    expect(fellBack.filesState).toBe('upstream');
    const shown = (await request(h.url).get(`${IMAGES}/${id}`).set(bearer(t.api_key)).expect(200)).body.data;
    expect(shown.tracker.files.state).toBe('upstream');
    expect(shown.task_result.images[0].url).toBe(shown.tracker.files.upstream_urls[0]);
    expect(await counted(metrics.resultStorageFallbacks)).toBe(fellBackBefore + 1);

    // The store becomes writable: a later attempt of the same job stores the copies.
    fs.rmSync(blocked);
    fs.mkdirSync(blocked);
    await h.waitForTask(id, (x) => x.filesState === 'stored');
    const after = (await request(h.url).get(`${IMAGES}/${id}`).set(bearer(t.api_key)).expect(200)).body.data;
    expect(after.task_status).toBe('succeed');
    expect(after.task_result.images[0].url.startsWith(`${h.url}/v1/files/`)).toBe(true);
    expect((await download(after.task_result.images[0].url)).equals(await download(after.tracker.files.upstream_urls[0]))).toBe(true);
    const deliveries = await h.api.db.webhookDelivery.findMany({ where: { taskId: id }, orderBy: { seq: 'asc' } });
    expect(deliveries.map((d) => d.eventType)).toEqual(['task.processing', 'task.succeeded']);
    expect(JSON.parse(deliveries[1].body).task_result.images[0].url).toBe(after.tracker.files.upstream_urls[0]);
    const events = await h.api.db.taskEvent.findMany({ where: { taskId: id }, orderBy: { seq: 'asc' } });
    // One way through storing and one succeed (`processing` itself may be skipped when the
    // upstream's success is applied before its processing callback).
    const states = events.map((e) => e.toState);
    expect(states.slice(-2)).toEqual(['storing', 'succeed']);
    expect(states.filter((x) => x === 'storing' || x === 'succeed')).toHaveLength(2);
  });
});
