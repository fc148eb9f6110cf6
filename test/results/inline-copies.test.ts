import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import request from 'supertest';
import { PNG } from 'pngjs';
import { metrics } from '../../src/observability/metrics';
import { blobKey } from '../../src/results/blob-store';
import { servingFrom, startHarness, type Harness } from '../helpers/harness';
import { bearer } from '../helpers/fixtures';
import { startReceiver, type Receiver } from '../helpers/receiver';
import { counted } from '../helpers/metrics';

const IMAGES = '/v1/images/generations';

const copiesStarted = (via: 'inline' | 'job') => counted(metrics.resultCopiesStarted, { via });

/**
 * A file host that answers every request with the same PNG after `delayMs`, or with the error
 * status `refuse` gives for the path and the request's number on it (from 1), counting the requests
 * per path; on `port` if given.
 */
async function fileHost(delayMs: number, refuse: (path: string, nth: number) => number | undefined = () => undefined, port = 0) {
  const png = PNG.sync.write(new PNG({ width: 8, height: 8 }));
  const requests = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const nth = (requests.get(req.url!) ?? 0) + 1;
    requests.set(req.url!, nth);
    const status = refuse(req.url!, nth);
    const answer = () => (status ? res.writeHead(status).end() : res.writeHead(200, { 'content-type': 'image/png' }).end(png));
    const timer = setTimeout(answer, delayMs);
    res.on('close', () => clearTimeout(timer));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    png,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

type FileHost = Awaited<ReturnType<typeof fileHost>>;

async function createImage(h: Harness, apiKey: string, prompt: string): Promise<string> {
  return (await request(h.url).post(IMAGES).set(bearer(apiKey)).send({ prompt }).expect(200)).body.data.task_id;
}

describe('copies written with the success (STORAGE_QUICK_MS=10000)', () => {
  let h: Harness;
  let receiver: Receiver;
  beforeAll(async () => {
    receiver = await startReceiver();
    // `processing` well after the submission's answer, so that the worker has written `submitted`
    // first (a fresh-clone run under load saw it applied before, skipping `submitted`), and the
    // success well after `processing`, so that the processing callback is applied first.
    h = await startHarness({
      env: { RESULT_URLS: 'mirror', STORAGE_QUICK_MS: '10000' },
      simulator: { processingAfterMs: 300, finishAfterMs: 400 },
    });
  });
  afterAll(async () => {
    await h.close();
    await receiver.close();
  });

  it('a copy done in time goes with the success: straight to succeed, without storing, one succeed webhook with the links', async () => {
    const t = await h.newTenant('dora');
    const id = (
      await request(h.url).post(IMAGES).set(bearer(t.api_key)).send({ prompt: 'a glacier', n: 2, callback_url: receiver.url }).expect(200)
    ).body.data.task_id;
    const done = await h.waitForTask(id, (x) => x.state === 'succeed');
    expect(done.filesState).toBe('stored');
    const events = await h.api.db.taskEvent.findMany({ where: { taskId: id }, orderBy: { seq: 'asc' } });
    expect(events.map((e) => e.toState)).toEqual(['queued', 'submitted', 'processing', 'succeed']);
    expect(events.at(-1)!.source).not.toBe('storage');
    const files = await h.api.db.resultFile.findMany({ where: { taskId: id }, orderBy: { index: 'asc' } });
    expect(files.map((f) => f.index)).toEqual([0, 1]);
    expect(await h.api.db.storedBlob.count({ where: { sha256: { in: files.map((f) => f.sha256) } } })).toBe(2);
    const hooks = await receiver.waitFor(2);
    expect(hooks.map((r) => r.json.task_status)).toEqual(['processing', 'succeed']);
    const links = (hooks[1].json.task_result as { images: { url: string }[] }).images.map((i) => i.url);
    expect(links.every((u) => u.startsWith(`${h.url}/v1/files/`))).toBe(true);
    const served = await fetch(links[1]);
    expect(served.status).toBe(200);
    const upstream = await fetch((done.result as { images: { url: string }[] }).images[1].url);
    expect(Buffer.from(await served.arrayBuffer()).equals(Buffer.from(await upstream.arrayBuffer()))).toBe(true);
  });
});

describe('a quick copy that fails', () => {
  let h: Harness;
  let receiver: Receiver;
  beforeAll(async () => {
    receiver = await startReceiver();
    h = await startHarness({
      env: { RESULT_URLS: 'mirror', STORAGE_QUICK_MS: '10000', STORAGE_TIMEOUT_MS: '600000', STORAGE_RETRY_MS: '200' },
    });
  });
  afterAll(async () => {
    await h.close();
    await receiver.close();
  });

  const states = async (id: string) =>
    (await h.api.db.taskEvent.findMany({ where: { taskId: id }, orderBy: { seq: 'asc' } })).map((e) => e.toState);

  it("because the file is gone (404), succeeds at once with the upstream's URLs, in the success's own change (no storing, no second try)", async () => {
    const files = await fileHost(0, () => 404);
    await servingFrom(h, files, async () => {
      const t = await h.newTenant('finn');
      const id = (
        await request(h.url).post(IMAGES).set(bearer(t.api_key)).send({ prompt: 'a lost reel', callback_url: receiver.url }).expect(200)
      ).body.data.task_id;
      expect((await h.waitForTask(id, (x) => x.state === 'succeed')).filesState).toBe('upstream');
      const hooks = await receiver.waitFor(2);
      expect(hooks.map((r) => r.json.task_status)).toEqual(['processing', 'succeed']);
      const urls = (hooks[1].json.task_result as { images: { url: string }[] }).images.map((i) => i.url);
      expect(urls.every((u) => u.startsWith(files.url))).toBe(true);
      expect(await states(id)).not.toContain('storing');
      // The quick copy's failure is the one handled: the file is not fetched again to learn it.
      expect([...files.requests.values()]).toEqual([1]);
    });
  });

  it("because its host refuses connections, succeeds at once with the upstream's URLs (no storing), and a job puts this service's links in their place once the host answers", async () => {
    // A port with nothing listening on it, until the host starts there.
    const probe = http.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    let files: FileHost | undefined;
    const hooksBefore = receiver.received.length;
    await servingFrom(h, { url: `http://127.0.0.1:${port}`, close: async () => files?.close() }, async () => {
      const t = await h.newTenant('hugo');
      const id = (
        await request(h.url).post(IMAGES).set(bearer(t.api_key)).send({ prompt: 'a closed door', callback_url: receiver.url }).expect(200)
      ).body.data.task_id;
      expect((await h.waitForTask(id, (x) => x.state === 'succeed')).filesState).toBe('upstream');
      const before = await states(id);
      expect(before).not.toContain('storing');
      expect(before.at(-1)).toBe('succeed');
      files = await fileHost(0, undefined, port);
      const stored = await h.waitForTask(id, (x) => x.filesState === 'stored');
      expect(files.requests.size).toBe(1);
      const shown = (await request(h.url).get(`${IMAGES}/${id}`).set(bearer(t.api_key)).expect(200)).body.data;
      expect(shown.task_result.images[0].url.startsWith(`${h.url}/v1/files/`)).toBe(true);
      // The links are replaced quietly: no new event, no third webhook.
      expect(await states(id)).toEqual(before);
      expect(stored.eventSeq).toBe(before.length);
      const hooks = (await receiver.waitFor(hooksBefore + 2)).slice(hooksBefore);
      expect(hooks.filter((r) => r.json.task_id === id).map((r) => r.json.task_status)).toEqual(['processing', 'succeed']);
    });
  });

  it('for a moment, goes on from storing as a job, whose retry copies the file: the task succeeds with its links', async () => {
    // The first request meets a server error (one that may pass); the others get the file.
    const files = await fileHost(0, (_path, nth) => (nth === 1 ? 503 : undefined));
    await servingFrom(h, files, async () => {
      const t = await h.newTenant('gus');
      const id = await createImage(h, t.api_key, 'a flicker');
      const done = await h.waitForTask(id, (x) => x.state === 'succeed');
      expect(done.filesState).toBe('stored');
      const events = await h.api.db.taskEvent.findMany({ where: { taskId: id }, orderBy: { seq: 'asc' } });
      expect(events.map((e) => e.toState).slice(-2)).toEqual(['storing', 'succeed']);
      expect([...files.requests.values()]).toEqual([2]);
    });
  });
});

describe('a quick copy that outlasts STORAGE_QUICK_MS (50)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ env: { RESULT_URLS: 'mirror', STORAGE_QUICK_MS: '50' } });
  });
  afterAll(async () => {
    await h.close();
  });

  it('goes on: the task enters storing and that same copy shows its links (the file is fetched once)', async () => {
    const files = await fileHost(500);
    await servingFrom(h, files, async () => {
      const t = await h.newTenant('eli');
      const id = await createImage(h, t.api_key, 'a long exposure');
      const done = await h.waitForTask(id, (x) => x.state === 'succeed');
      expect(done.filesState).toBe('stored');
      const events = await h.api.db.taskEvent.findMany({ where: { taskId: id }, orderBy: { seq: 'asc' } });
      expect(events.map((e) => e.toState).slice(-2)).toEqual(['storing', 'succeed']);
      expect([...files.requests.values()]).toEqual([1]);
    });
  });
});

describe('copies made from storing by the process that saw the success (STORAGE_QUICK_MS=0, STORAGE_HOLD_MS=1000)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ env: { RESULT_URLS: 'mirror', STORAGE_QUICK_MS: '0', STORAGE_HOLD_MS: '1000' } });
  });
  afterAll(async () => {
    await h.close();
  });

  it('copies the outputs there, without a result.store job', async () => {
    const t = await h.newTenant('erin');
    const [inline, job] = [await copiesStarted('inline'), await copiesStarted('job')];
    const id = await createImage(h, t.api_key, 'a lighthouse');
    const done = await h.waitForTask(id, (x) => x.state === 'succeed');
    expect(done.filesState).toBe('stored');
    expect(await copiesStarted('inline')).toBe(inline + 1);
    expect(await copiesStarted('job')).toBe(job);
    const events = await h.api.db.taskEvent.findMany({ where: { taskId: id }, orderBy: { seq: 'asc' } });
    expect(events.map((e) => `${e.toState}:${e.source}`).slice(-1)).toEqual(['succeed:storage']);
    expect(events.map((e) => e.toState)).toContain('storing');
  });

  it('is not doubled by the results sweep while its process renews the hold, however many holds it outlasts', async () => {
    // The file answers after 3 s: three holds of a second (renewed every 250 ms), and fifteen
    // sweeps (every 200 ms, SWEEP_MIN_AGE_MS 100), pass meanwhile.
    const files = await fileHost(3000);
    await servingFrom(h, files, async () => {
      const t = await h.newTenant('frank');
      const id = await createImage(h, t.api_key, 'a slow tide');
      const done = await h.waitForTask(id, (x) => x.state === 'succeed');
      expect(done.filesState).toBe('stored');
      expect([...files.requests.values()]).toEqual([1]);
    });
  });

  it('of a process that died mid-copy, goes on as a job once the hold has run out, long before STORAGE_INLINE_MS (60 s)', async () => {
    const t = await h.newTenant('gina');
    const id = await createImage(h, t.api_key, 'a quiet harbour');
    await h.waitForTask(id, (x) => x.state === 'succeed');
    // The row as a process leaves it when it dies mid-copy: `storing`, held until a moment ago, no job, no copy running.
    await h.api.db.$executeRaw`UPDATE tasks SET state = 'storing', files_state = NULL, files = NULL, finished_at = NULL,
      storing_since = now(), copy_held_until = now() WHERE id = ${id}`;
    const done = await h.waitForTask(id, (x) => x.state === 'succeed', 10_000);
    expect(done.filesState).toBe('stored');
    const shown = (await request(h.url).get(`${IMAGES}/${id}`).set(bearer(t.api_key)).expect(200)).body.data;
    expect(shown.task_result.images[0].url.startsWith(`${h.url}/v1/files/`)).toBe(true);
  });
});

describe('copies of some outputs only', () => {
  let h: Harness;
  beforeAll(async () => {
    // One attempt from `storing`, then the failure is for good: no later attempt marks the object.
    h = await startHarness({ env: { RESULT_URLS: 'mirror', STORAGE_QUICK_MS: '0' } });
  });
  afterAll(async () => {
    await h.close();
  });

  it('gives an object written before a later output failed its blob row, so the blob sweep can delete it', async () => {
    // The first of two outputs is copied; the second is gone (404), which no retry can cure.
    const files = await fileHost(0, (p) => (p.endsWith('/1.png') ? 404 : undefined));
    await servingFrom(h, files, async () => {
      const t = await h.newTenant('ivan');
      const id = (await request(h.url).post(IMAGES).set(bearer(t.api_key)).send({ prompt: 'two moons', n: 2 }).expect(200)).body.data
        .task_id;
      expect((await h.waitForTask(id, (x) => x.state === 'succeed')).filesState).toBe('upstream');
      const sha256 = createHash('sha256').update(files.png).digest('hex');
      expect(fs.existsSync(path.join(h.config.STORAGE_DIR, blobKey(sha256)))).toBe(true);
      expect(await h.api.db.storedBlob.count({ where: { sha256 } })).toBe(1);
    });
  });
});

describe('copies whose lease runs out (STORAGE_INLINE_MS=300)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ env: { RESULT_URLS: 'mirror', STORAGE_INLINE_MS: '300', STORAGE_TIMEOUT_MS: '600000' } });
  });
  afterAll(async () => {
    await h.close();
  });

  it('a task left in storing by a process that died mid-copy gets its copy from a job once the lease has passed', async () => {
    const t = await h.newTenant('gina');
    const id = await createImage(h, t.api_key, 'a quiet harbour');
    await h.waitForTask(id, (x) => x.state === 'succeed');
    // The row as a process leaves it when it dies right after committing `storing`: no job, no copy running, no hold renewed.
    await h.api.db.$executeRaw`UPDATE tasks SET state = 'storing', files_state = NULL, files = NULL, finished_at = NULL,
      storing_since = now() WHERE id = ${id}`;
    const done = await h.waitForTask(id, (x) => x.state === 'succeed');
    expect(done.filesState).toBe('stored');
    const shown = (await request(h.url).get(`${IMAGES}/${id}`).set(bearer(t.api_key)).expect(200)).body.data;
    expect(shown.task_result.images[0].url.startsWith(`${h.url}/v1/files/`)).toBe(true);
  });

  it('goes on as a job when the download outlasts the lease, and the lease running out does not count against the file host', async () => {
    // Three at once: were each lease's end counted as a failure of the host, its circuit breaker
    // would open, the jobs' downloads would be refused at once and the tasks would fall back to the upstream's URLs.
    const files = await fileHost(1000);
    await servingFrom(h, files, async () => {
      const t = await h.newTenant('hana');
      const before = await counted(metrics.resultStorageFallbacks);
      const ids = await Promise.all(['dune', 'mesa', 'reef'].map((p) => createImage(h, t.api_key, p)));
      for (const id of ids) expect((await h.waitForTask(id, (x) => x.state === 'succeed')).filesState).toBe('stored');
      expect(await counted(metrics.resultStorageFallbacks)).toBe(before);
    });
  });
});
