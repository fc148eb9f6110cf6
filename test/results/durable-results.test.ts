import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import { createFileLinks } from '../../src/results/file-links';
import { createDirBlobStore } from '../../src/results/dir-blob-store';
import { blobKey } from '../../src/results/blob-store';
import { expireResults } from '../../src/tasks/expire-results';
import { createTenant } from '../../src/tenants/tenants.service';
import { metrics } from '../../src/observability/metrics';
import { startHarness, type Harness } from '../helpers/harness';
import { startReceiver, type Receiver } from '../helpers/receiver';
import { bearer } from '../helpers/fixtures';
import { counted } from '../helpers/metrics';

const storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kt-durable-'));
let h: Harness;
let receiver: Receiver;
let tenant: { api_key: string; webhook_secret: string; id: string };

beforeAll(async () => {
  receiver = await startReceiver();
  // STORAGE_QUICK_MS=0: every copy is made from `storing` (test/results/inline-copies.test.ts has the quick path).
  h = await startHarness({ env: { RESULT_URLS: 'mirror', STORAGE_DIR: storageDir, STORAGE_TIMEOUT_MS: '20000', STORAGE_QUICK_MS: '0' } });
});
afterAll(async () => {
  await h.close();
  await receiver.close();
  fs.rmSync(storageDir, { recursive: true, force: true });
});
beforeEach(async () => {
  await h.reset();
  receiver.received.length = 0;
  tenant = await h.newTenant('alice');
});

const IMAGES = '/v1/images/generations';
const T2V = '/v1/videos/text2video';
const create = (p: string, body: object, key = tenant.api_key) => request(h.url).post(p).set(bearer(key)).send(body);
const get = async (p: string, id: string, key = tenant.api_key) =>
  (await request(h.url).get(`${p}/${id}`).set(bearer(key)).expect(200)).body.data;
const download = async (url: string, headers: Record<string, string> = {}) => {
  const res = await fetch(url, { headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
};
const succeeded = (id: string) => h.waitForTask(id, (t) => t.state === 'succeed');

describe('durable copies in a directory (RESULT_URLS=mirror)', () => {
  it("shows this service's links, which serve exactly the upstream's bytes without Authorization, and the signed succeed webhook carries them", async () => {
    const created = await create(IMAGES, { prompt: 'a heron', n: 2, callback_url: receiver.url }).expect(200);
    const id = created.body.data.task_id;
    await succeeded(id);
    const task = await get(IMAGES, id);
    expect(task.task_status).toBe('succeed');
    expect(task.tracker.files).toMatchObject({
      state: 'stored',
      expires_at: null,
      upstream_urls: [expect.any(String), expect.any(String)],
    });
    const links: string[] = task.task_result.images.map((i: { url: string }) => i.url);
    expect(links.every((u) => u.startsWith(`${h.url}/v1/files/`))).toBe(true);
    for (const [i, link] of links.entries()) {
      const ours = await download(link);
      const upstream = await download(task.tracker.files.upstream_urls[i]);
      expect(ours.status).toBe(200);
      expect(ours.headers.get('content-type')).toBe('image/png');
      expect(ours.headers.get('accept-ranges')).toBe('bytes');
      expect(ours.headers.get('cache-control')).toMatch(/^private, max-age=\d+, immutable$/);
      expect(ours.headers.get('etag')).toMatch(/^"[0-9a-f]{64}"$/);
      expect(ours.body.equals(upstream.body)).toBe(true);
    }

    // The client saw processing while the copies were made, then one succeed with the links.
    const hooks = await receiver.waitFor(2);
    const statuses = hooks.map((r) => r.json.task_status);
    expect(statuses).toEqual(['processing', 'succeed']);
    const succeed = hooks[1];
    new Webhook(tenant.webhook_secret).verify(succeed.body, {
      'webhook-id': succeed.headers['webhook-id'] as string,
      'webhook-timestamp': succeed.headers['webhook-timestamp'] as string,
      'webhook-signature': succeed.headers['webhook-signature'] as string,
    });
    const hookLinks = (succeed.json.task_result as { images: { url: string }[] }).images.map((i) => i.url);
    expect(hookLinks.every((u) => u.startsWith(`${h.url}/v1/files/`))).toBe(true);
    expect((await download(hookLinks[1])).body.equals((await download(links[1])).body)).toBe(true);

    const events = await h.api.db.taskEvent.findMany({ where: { taskId: id }, orderBy: { seq: 'asc' } });
    // (`processing` itself may be skipped when the upstream's success is applied before its processing callback.)
    expect(events.map((e) => e.toState).slice(-2)).toEqual(['storing', 'succeed']);
    // The list shows the links too.
    const list = await request(h.url).get(IMAGES).set(bearer(tenant.api_key)).expect(200);
    expect(list.body.data[0].task_result.images[0].url.startsWith(`${h.url}/v1/files/`)).toBe(true);
  });

  it('refuses tampered and expired links (4xx), and re-signs links on every read', async () => {
    const id = (await create(IMAGES, { prompt: 'a kite' }).expect(200)).body.data.task_id;
    await succeeded(id);
    const link = new URL((await get(IMAGES, id)).task_result.images[0].url);
    expect((await download(link.href)).status).toBe(200);

    const sig = link.searchParams.get('signature')!;
    const tampered = new URL(link);
    tampered.searchParams.set('signature', (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1));
    const later = new URL(link);
    later.searchParams.set('expires', String(Number(link.searchParams.get('expires')) + 60));
    const otherFile = new URL(link);
    otherFile.pathname = link.pathname.replace(/[0-9a-f](?=\.png$)/, (c) => (c === '0' ? '1' : '0'));
    const unsigned = new URL(link);
    unsigned.search = '';
    for (const bad of [tampered, later, otherFile, unsigned]) {
      const res = await request(h.url).get(bad.pathname + bad.search);
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ code: expect.any(Number), message: expect.any(String), request_id: expect.any(String) });
    }

    // A link signed by this service's key, but past its expiry.
    const links = createFileLinks({ baseUrl: () => h.url, key: h.api.secrets.deriveKey('result-links'), ttlMs: 60_000 });
    const fileId = link.pathname
      .split('/')
      .pop()!
      .replace(/\.png$/, '');
    const expired = new URL(links.url({ id: fileId, ext: 'png' }, new Date(Date.now() - 3_600_000)));
    const refused = await request(h.url).get(expired.pathname + expired.search);
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe(1004);
    // The same key, a fresh expiry: served (so the refusal above was the expiry alone).
    const fresh = new URL(links.url({ id: fileId, ext: 'png' }));
    expect((await request(h.url).get(fresh.pathname + fresh.search)).status).toBe(200);
  });

  it('serves byte ranges of videos (206, Content-Range), and refuses a range outside the file', async () => {
    const id = (await create(T2V, { prompt: 'waves', duration: '5' }).expect(200)).body.data.task_id;
    await succeeded(id);
    const task = await get(T2V, id);
    const link: string = task.task_result.videos[0].url;
    const whole = await download(link);
    expect(whole.headers.get('content-type')).toBe('video/mp4');
    expect(whole.body.equals((await download(task.tracker.files.upstream_urls[0])).body)).toBe(true);

    const part = await download(link, { range: 'bytes=100-1099' });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-1099/${whole.body.length}`);
    expect(part.body.equals(whole.body.subarray(100, 1100))).toBe(true);
    const tail = await download(link, { range: 'bytes=-10' });
    expect(tail.status).toBe(206);
    expect(tail.body.equals(whole.body.subarray(whole.body.length - 10))).toBe(true);
    const outside = await download(link, { range: `bytes=${whole.body.length + 5}-` });
    expect(outside.status).toBe(416);
    expect(outside.headers.get('content-range')).toBe(`bytes */${whole.body.length}`);
  });

  it('stores identical content once, whichever tasks it came from', async () => {
    const written = () => counted(metrics.resultObjectsStored);
    const before = await written();
    const ids: string[] = [];
    // One after the other: two copies of the same bytes made at the same moment may both write the
    // object (the same bytes under the same key, which is harmless); a later one never does.
    for (let i = 0; i < 2; i++) {
      ids.push((await create(T2V, { prompt: `same clip ${i}`, duration: '10' }).expect(200)).body.data.task_id);
      await succeeded(ids[i]);
    }
    const files = await h.api.db.resultFile.findMany({ where: { taskId: { in: ids } } });
    expect(files).toHaveLength(2);
    expect(files[0].sha256).toBe(files[1].sha256);
    expect(files[0].id).not.toBe(files[1].id);
    expect(await h.api.db.storedBlob.count()).toBe(1);
    expect(await written()).toBe(before + 1);
    const stored = fs.readFileSync(path.join(storageDir, blobKey(files[0].sha256)));
    expect(stored.length).toBe(Number(files[0].size));
  });

  it("deletes copies past the tenant's retention: the task says when, its links answer 410, and unshared objects leave the store", async () => {
    const keeper = await createTenant(h.api.db, h.api.secrets, 'keeper', { resultRetentionDays: 3 });
    const before = Date.now();
    const id = (await create(T2V, { prompt: 'kept three days', duration: '5' }, keeper.api_key).expect(200)).body.data.task_id;
    // expires_at is known from the first answer on.
    const early = await get(T2V, id, keeper.api_key);
    expect(early.tracker.files.state).toBe('none');
    expect(early.tracker.files.expires_at).toBeGreaterThanOrEqual(before + 3 * 86_400_000);
    expect(early.tracker.files.expires_at).toBeLessThanOrEqual(Date.now() + 3 * 86_400_000);
    const other = (await create(T2V, { prompt: 'kept forever, same bytes', duration: '5' }).expect(200)).body.data.task_id;
    const unshared = (await create(IMAGES, { prompt: 'kept three days too' }, keeper.api_key).expect(200)).body.data.task_id;
    for (const t of [id, other, unshared]) await succeeded(t);
    const link: string = (await get(T2V, id, keeper.api_key)).task_result.videos[0].url;
    const imageFile = await h.api.db.resultFile.findFirstOrThrow({ where: { taskId: unshared } });
    expect((await download(link)).status).toBe(200);

    // Nothing is due yet.
    const blobs = createDirBlobStore(storageDir);
    expect(await expireResults(h.api.db, blobs)).toEqual({ tasks: 0, blobs: 0 });
    // Four days on: both of the tenant's tasks expire, and the image's object, which no copy refers to any more, leaves the store.
    const at = new Date(Date.now() + 4 * 86_400_000);
    expect(await expireResults(h.api.db, blobs, at)).toEqual({ tasks: 2, blobs: 1 });
    const expired = await get(T2V, id, keeper.api_key);
    expect(expired.tracker.files).toMatchObject({ state: 'expired', expired_at: at.getTime() });
    const gone = await download(link);
    expect(gone.status).toBe(410);
    expect(await h.api.db.resultFile.count({ where: { taskId: { in: [id, unshared] } } })).toBe(0);

    expect(fs.existsSync(path.join(storageDir, imageFile.storageKey))).toBe(false);
    // The video's bytes stay for the task that still keeps them.
    const kept = await get(T2V, other);
    expect((await download(kept.task_result.videos[0].url)).status).toBe(200);
  });

  it('keeps serving the copies once the upstream is gone', async () => {
    const id = (await create(IMAGES, { prompt: 'an owl' }).expect(200)).body.data.task_id;
    await succeeded(id);
    const task = await get(IMAGES, id);
    const upstreamBytes = (await download(task.tracker.files.upstream_urls[0])).body;
    await h.sim.close();
    await expect(fetch(task.tracker.files.upstream_urls[0])).rejects.toThrow();
    const fresh = await get(IMAGES, id);
    const again = await download(fresh.task_result.images[0].url);
    expect(again.status).toBe(200);
    expect(again.body.equals(upstreamBytes)).toBe(true);
  });
});
