import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { createDirBlobStore } from '../../src/results/dir-blob-store';
import type { BlobStore } from '../../src/results/blob-store';
import { createInlineCopies } from '../../src/tasks/inline-copies';
import type { TaskStore } from '../../src/tasks/status-machine';
import type { ReadTask } from '../../src/tasks/task-repository';

/**
 * STORAGE_QUICK_MS bounds the fetching of a quick copy. Into a local store, the rest (the write and
 * its sync to the disk) is waited for, as a commit waits for its own, up to a second: a disk slow
 * for a moment must not send the task through `storing`, a stalled one must not hold it. A store on another host (S3) counts its upload in the limit.
 * The disk's slowness is the one thing staged: the real directory store, with its write held back.
 */
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kt-quick-local-'));
const png = PNG.sync.write(new PNG({ width: 8, height: 8 }));
const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(png));
let base: string;

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  fs.rmSync(root, { recursive: true, force: true });
});

/** A directory store of its own (at `root/name`) with each write held back `delayMs`, claiming to be `local` or not. */
function slowStore(name: string, local: boolean, delayMs: number): BlobStore {
  const real = createDirBlobStore(path.join(root, name));
  return {
    ...real,
    local,
    putFile: async (key, file, type) => {
      await new Promise((r) => setTimeout(r, delayMs));
      await real.putFile(key, file, type);
    },
    putBytes: async (key, bytes, type) => {
      await new Promise((r) => setTimeout(r, delayMs));
      await real.putBytes(key, bytes, type);
    },
  };
}

/** `quickMs` 200: wide enough for a tiny download on a loaded machine; the writes below are staged around it. */
function quickCopy(blobs: BlobStore, seed: string, { quickMs = 200, localWriteMs }: { quickMs?: number; localWriteMs?: number } = {}) {
  const copies = createInlineCopies({
    // New content touches no row (each test's store is empty): the copy reads and writes no database here.
    store: {} as TaskStore,
    storage: { blobs, limits: { maxBytes: 1_000_000, timeoutMs: 10_000, allowPrivate: true }, timeoutMs: 60_000, inlineMs: 60_000 },
    quickMs,
    localWriteMs,
    max: 10,
    enqueueStores: async () => true,
  });
  const task = { id: `task-${seed}`, kind: 'image-generation', accountId: null } as unknown as ReadTask;
  return { copies, copied: copies.quick(task, { images: [{ index: 0, url: `${base}/${seed}.png` }] }) };
}

it('waits for a local store once every byte is here, its write taking longer than STORAGE_QUICK_MS', async () => {
  // A second for the download (the first in this process), the write held back half a second past
  // it, and a wait for the write wide enough for a loaded machine's syncs: only the order is tested.
  const { copies, copied } = quickCopy(slowStore('local', true, 1500), 'local', { quickMs: 1000, localWriteMs: 10_000 });
  const got = await copied;
  if (!Array.isArray(got)) throw new Error(`no copies: ${JSON.stringify(got)}`);
  expect(got).toHaveLength(1);
  expect(got[0].size).toBe(png.length);
  expect(fs.readFileSync(path.join(root, 'local', got[0].storageKey))).toEqual(png);
  await copies.drain();
});

it('stops waiting for a local store stalled past a second: the task goes through storing', async () => {
  const { copies, copied } = quickCopy(slowStore('stalled', true, 2500), 'stalled');
  expect(await copied).toBeNull();
  await copies.drain();
});

it('does not wait past STORAGE_QUICK_MS for a store on another host: the task goes through storing', async () => {
  const { copies, copied } = quickCopy(slowStore('remote', false, 600), 'remote');
  expect(await copied).toBeNull();
  await copies.drain();
});
