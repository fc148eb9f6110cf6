import { HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import request from 'supertest';
import { blobKey } from '../../src/results/blob-store';
import { startHarness, type Harness } from '../helpers/harness';
import { startLocalS3, type LocalS3 } from '../helpers/s3-server';
import { bearer } from '../helpers/fixtures';

let s3: LocalS3;
let h: Harness;
let client: S3Client;
let key: string;

beforeAll(async () => {
  s3 = await startLocalS3();
  h = await startHarness({ env: { RESULT_URLS: 'mirror', STORAGE_TIMEOUT_MS: '20000', ...s3.env } });
  client = new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
});
afterAll(async () => {
  client?.destroy();
  await h?.close();
  await s3?.close();
});
beforeEach(async () => {
  key = (await h.newTenant('s3')).api_key;
});

const create = (p: string, body: object) => request(h.url).post(p).set(bearer(key)).send(body).expect(200);
const get = async (p: string, id: string) => (await request(h.url).get(`${p}/${id}`).set(bearer(key)).expect(200)).body.data;
const download = async (url: string, headers: Record<string, string> = {}) => {
  const res = await fetch(url, { headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
};
const objects = async () => (await client.send(new ListObjectsV2Command({ Bucket: s3.bucket }))).Contents ?? [];

describe('durable copies in an S3-compatible bucket', () => {
  const served: { link: string; bytes: Buffer }[] = [];

  it("stores each output as an object of exactly the upstream's bytes, served by this service's signed links", async () => {
    const id = (await create('/v1/images/generations', { prompt: 'a lantern', n: 2 })).body.data.task_id;
    await h.waitForTask(id, (t) => t.state === 'succeed');
    const task = await get('/v1/images/generations', id);
    expect(task.tracker.files.state).toBe('stored');
    for (const [i, image] of (task.task_result.images as { url: string }[]).entries()) {
      expect(image.url.startsWith(`${h.url}/v1/files/`)).toBe(true);
      const ours = await download(image.url);
      const upstream = await download(task.tracker.files.upstream_urls[i]);
      expect(ours.status).toBe(200);
      expect(ours.headers.get('content-type')).toBe('image/png');
      expect(ours.body.equals(upstream.body)).toBe(true);
      served.push({ link: image.url, bytes: ours.body });
    }
    const files = await h.api.db.resultFile.findMany({ where: { taskId: id }, orderBy: { index: 'asc' } });
    for (const f of files) {
      const head = await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: blobKey(f.sha256) }));
      // The bytes as sent: no aws-chunked framing kept around them.
      expect(head.ContentLength).toBe(Number(f.size));
      expect(head.ContentType).toBe('image/png');
    }
    const tampered = new URL(served[0].link);
    tampered.searchParams.set('expires', String(Number(tampered.searchParams.get('expires')) + 60));
    expect((await download(tampered.href)).status).toBe(403);
  });

  it('serves ranges of a video from the bucket and stores identical videos once', async () => {
    const before = (await objects()).length;
    const ids = [
      (await create('/v1/videos/text2video', { prompt: 'a river', duration: '5' })).body.data.task_id,
      (await create('/v1/videos/text2video', { prompt: 'the same river', duration: '5' })).body.data.task_id,
    ];
    for (const id of ids) await h.waitForTask(id, (t) => t.state === 'succeed');
    expect((await objects()).length).toBe(before + 1);
    const task = await get('/v1/videos/text2video', ids[0]);
    const link: string = task.task_result.videos[0].url;
    const whole = await download(link);
    expect(whole.body.equals((await download(task.tracker.files.upstream_urls[0])).body)).toBe(true);
    const part = await download(link, { range: 'bytes=0-499' });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 0-499/${whole.body.length}`);
    expect(part.body.equals(whole.body.subarray(0, 500))).toBe(true);
    served.push({ link, bytes: whole.body });
  });

  it('keeps serving the copies once the upstream is gone', async () => {
    expect(served.length).toBe(3);
    await h.sim.close();
    for (const { link, bytes } of served) {
      const again = await download(link);
      expect(again.status).toBe(200);
      expect(again.body.equals(bytes)).toBe(true);
    }
  });
});
