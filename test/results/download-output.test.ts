import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import {
  DownloadError,
  downloadOutput,
  HOST_FAILURES_TO_BREAK,
  IN_MEMORY_BYTES,
  type DownloadLimits,
} from '../../src/results/download-output';
import { createSpool } from '../../src/results/spool';
import { hostLookup } from '../../src/lib/host-lookup';
import { freePort } from '../helpers/processes';

const png = PNG.sync.write(new PNG({ width: 64, height: 64 }));
const mp4 = Buffer.concat([Buffer.from([0, 0, 0, 0x20]), Buffer.from('ftypisom'), Buffer.alloc(2000, 1)]);
/** A video past IN_MEMORY_BYTES: spooled to a file as it arrives. */
const largeMp4 = Buffer.concat([mp4, Buffer.alloc(IN_MEMORY_BYTES + 256 * 1024, 2)]);
const spoolDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kt-spool-'));
const spool = createSpool(spoolDir);
const limits: DownloadLimits = { maxBytes: 1_000_000, timeoutMs: 5_000, allowPrivate: true };
const servers: http.Server[] = [];

/**
 * An upstream's file server: real HTTP on loopback, with a port (so a host) of its own. Each test
 * gets its own: downloads that fail count against their host, and enough of them make downloads
 * from it fail at once.
 */
async function fileServer(extra?: http.RequestListener): Promise<string> {
  const server = http.createServer((req, res) => {
    if (req.url === '/a.png') return void res.writeHead(200, { 'content-type': 'image/png' }).end(png);
    if (req.url === '/moved.png') return void res.writeHead(302, { location: '/a.png' }).end();
    if (req.url === '/clip.mp4') return void res.writeHead(200, { 'content-type': 'video/mp4' }).end(mp4);
    if (req.url === '/large.mp4') return void res.writeHead(200, { 'content-type': 'video/mp4' }).end(largeMp4);
    if (req.url === '/stalls-large.mp4') {
      res.writeHead(200, { 'content-type': 'video/mp4' });
      res.write(largeMp4);
      return; // never ends
    }
    // Claims to be an image, is a page.
    if (req.url === '/page.png') return void res.writeHead(200, { 'content-type': 'image/png' }).end('<!DOCTYPE html><html>expired</html>');
    if (req.url === '/silent.png') return; // never answers
    if (req.url === '/slow.png') {
      res.writeHead(200, { 'content-type': 'image/png' });
      res.write(png.subarray(0, 20));
      return; // never ends
    }
    if (extra) return extra(req, res);
    res.writeHead(404).end();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
  fs.rmSync(spoolDir, { recursive: true, force: true });
});

beforeEach(() => {
  for (const f of fs.readdirSync(spoolDir)) fs.rmSync(path.join(spoolDir, f));
});

const failure = (p: Promise<unknown>) =>
  p.then(
    () => 'succeeded',
    (e: unknown) => (e instanceof DownloadError ? e.outcome : `unexpected: ${String(e)}`),
  );
const spooled = () => fs.readdirSync(spoolDir);

describe('downloading an output from the upstream', () => {
  it('keeps a small output in memory with its SHA-256, size and type, following a redirect: no spool file', async () => {
    const base = await fileServer();
    const got = await downloadOutput(`${base}/moved.png`, 'image', spool, limits);
    expect(got).toMatchObject({ kind: 'image', contentType: 'image/png', ext: 'png', size: png.length });
    expect(got.path).toBeUndefined();
    expect(got.bytes?.equals(png)).toBe(true);
    expect(got.sha256).toBe(createHash('sha256').update(png).digest('hex'));
    expect((await downloadOutput(`${base}/clip.mp4`, 'video', spool, limits)).contentType).toBe('video/mp4');
    expect(spooled()).toEqual([]);
  });

  it('streams an output larger than IN_MEMORY_BYTES into a spool file, which it leaves to the caller', async () => {
    const base = await fileServer();
    const got = await downloadOutput(`${base}/large.mp4`, 'video', spool, { ...limits, maxBytes: 2 * largeMp4.length });
    expect(got).toMatchObject({ kind: 'video', contentType: 'video/mp4', size: largeMp4.length });
    expect(got.bytes).toBeUndefined();
    expect(got.sha256).toBe(createHash('sha256').update(largeMp4).digest('hex'));
    expect(spooled()).toEqual([path.basename(got.path!)]);
    expect(fs.readFileSync(got.path!).equals(largeMp4)).toBe(true);
  });

  it('spools into a spool directory removed under it: the directory is made again', async () => {
    const base = await fileServer();
    fs.rmSync(spoolDir, { recursive: true });
    const got = await downloadOutput(`${base}/large.mp4`, 'video', spool, { ...limits, maxBytes: 2 * largeMp4.length });
    expect(spooled()).toEqual([path.basename(got.path!)]);
    expect(fs.readFileSync(got.path!).equals(largeMp4)).toBe(true);
  });

  it('refuses bytes of the wrong kind, oversized outputs, error answers and stalls, and leaves no spool file behind', async () => {
    const base = await fileServer();
    expect(await failure(downloadOutput(`${base}/page.png`, 'image', spool, limits))).toBe('wrong_type');
    expect(await failure(downloadOutput(`${base}/clip.mp4`, 'image', spool, limits))).toBe('wrong_type');
    expect(await failure(downloadOutput(`${base}/a.png`, 'video', spool, limits))).toBe('wrong_type');
    expect(await failure(downloadOutput(`${base}/a.png`, 'image', spool, { ...limits, maxBytes: png.length - 1 }))).toBe('too_large');
    expect(await failure(downloadOutput(`${base}/gone.png`, 'image', spool, limits))).toBe('http_status');
    expect(await failure(downloadOutput(`${base}/slow.png`, 'image', spool, { ...limits, timeoutMs: 300 }))).toBe('timeout');
    // Past IN_MEMORY_BYTES, once the spool file is written to.
    const spooling = { ...limits, maxBytes: IN_MEMORY_BYTES + 128 * 1024 };
    expect(await failure(downloadOutput(`${base}/large.mp4`, 'video', spool, spooling))).toBe('too_large');
    expect(
      await failure(
        downloadOutput(`${base}/stalls-large.mp4`, 'video', spool, { ...spooling, maxBytes: 2 * largeMp4.length, timeoutMs: 3000 }),
      ),
    ).toBe('timeout');
    expect(spooled()).toEqual([]);
  });

  it('tells a host that cannot be reached now (refused, no answer) from a transfer cut short', async () => {
    const base = await fileServer();
    const kinds = async (p: Promise<unknown>) =>
      p.then(
        () => 'succeeded',
        (e: unknown) => (e instanceof DownloadError ? [e.outcome, e.permanent, e.unreachable] : `unexpected: ${String(e)}`),
      );
    const closed = await freePort();
    expect(await kinds(downloadOutput(`http://127.0.0.1:${closed}/a.png`, 'image', spool, limits))).toEqual(['network', false, true]);
    expect(await kinds(downloadOutput(`${base}/silent.png`, 'image', spool, { ...limits, answerTimeoutMs: 300 }))).toEqual([
      'timeout',
      false,
      true,
    ]);
    // An answer that started and then stalled is not the host being unreachable: retried while the client waits.
    expect(await kinds(downloadOutput(`${base}/slow.png`, 'image', spool, { ...limits, timeoutMs: 300 }))).toEqual([
      'timeout',
      false,
      false,
    ]);
    expect(await kinds(downloadOutput(`${base}/gone.png`, 'image', spool, limits))).toEqual(['http_status', true, true]);
    expect(spooled()).toEqual([]);
  });

  it('refuses loopback and private addresses unless the upstream itself is on a private network', async () => {
    const base = await fileServer();
    expect(await failure(downloadOutput(`${base}/a.png`, 'image', spool, { ...limits, allowPrivate: false }))).toBe('network');
    expect(
      await failure(
        downloadOutput(`http://169.254.169.254/latest/meta-data`, 'image', spool, { ...limits, allowPrivate: false, timeoutMs: 2000 }),
      ),
    ).toBe('network');
    expect(spooled()).toEqual([]);
  });

  it('resolves a host name through the shared cache and still refuses a private address it resolves to', async () => {
    const base = (await fileServer()).replace('127.0.0.1', 'localhost');
    const asked: string[] = [];
    const lookup = hostLookup.lookup;
    hostLookup.lookup = ((hostname: string, ...rest: [never, never]) => (asked.push(hostname), lookup(hostname, ...rest))) as typeof lookup;
    let got;
    try {
      got = await downloadOutput(`${base}/a.png`, 'image', spool, limits);
    } finally {
      hostLookup.lookup = lookup;
    }
    expect(asked).toContain('localhost');
    expect(got.bytes?.equals(png)).toBe(true);
    // The name is now cached; the address it gave is checked all the same.
    const refused = await downloadOutput(`${base}/a.png`, 'image', spool, { ...limits, allowPrivate: false }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DownloadError);
    expect(refused).toMatchObject({ outcome: 'network', permanent: true });
    expect(spooled()).toEqual([]);
  });

  it('stops waiting on a host whose downloads keep failing, and tries it again, one download at a time, until it answers', async () => {
    let failing = true;
    let requests = 0;
    const base = await fileServer((req, res) => {
      requests++;
      if (failing) return void res.writeHead(503).end();
      res.writeHead(200, { 'content-type': 'image/png' }).end(png);
    });
    const outcome = (p: Promise<unknown>) =>
      p.then(
        () => 'ok',
        (e: unknown) => (e instanceof DownloadError ? `${e.outcome} unreachable=${e.unreachable}` : `unexpected: ${String(e)}`),
      );
    const get = () => outcome(downloadOutput(`${base}/flaky.png`, 'image', spool, limits));
    for (let i = 0; i < HOST_FAILURES_TO_BREAK; i++) expect(await get()).toBe('http_status unreachable=false');
    expect(requests).toBe(HOST_FAILURES_TO_BREAK);
    // Now failing at once, as unreachable for now (the task succeeds with the upstream's URLs meanwhile), without asking the host.
    expect(await Promise.all([get(), get(), get()])).toEqual(Array(3).fill('host_failing unreachable=true'));
    expect(requests).toBe(HOST_FAILURES_TO_BREAK);
    // Still failing: a trial download goes through once the pause is over, and the host is left alone again.
    while (requests === HOST_FAILURES_TO_BREAK) {
      expect(await get()).toMatch(/^(host_failing|http_status) unreachable=(true|false)$/);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(requests).toBe(HOST_FAILURES_TO_BREAK + 1);
    expect(await get()).toBe('host_failing unreachable=true');
    // It recovers: the next trial gets through, and every download after it is made again.
    failing = false;
    let result = await get();
    while (result !== 'ok') {
      expect(result).toBe('host_failing unreachable=true');
      await new Promise((r) => setTimeout(r, 100));
      result = await get();
    }
    const before = requests;
    expect(await Promise.all([get(), get(), get()])).toEqual(['ok', 'ok', 'ok']);
    expect(requests).toBe(before + 3);
    expect(spooled()).toEqual([]);
  });
});
