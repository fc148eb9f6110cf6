import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { BlobStore } from './blob-store';
import { createSpool } from './spool';

const SAFE_KEY = /^[0-9a-f]{2}\/[0-9a-f]{64}$/;

/**
 * A local directory (STORAGE_DIR): objects are files, stored by an atomic rename from `<dir>/.spool`
 * (a download's spool file, or one written from memory), each synced to the disk (its bytes, then
 * its name) before it is reported stored.
 */
export function createDirBlobStore(dir: string): BlobStore {
  const root = path.resolve(dir);
  const spool = createSpool(path.join(root, '.spool'));
  const fileOf = (key: string) => {
    // Keys are made from hashes only; anything else must never become a path.
    if (!SAFE_KEY.test(key)) throw new Error(`not a blob key: ${key.slice(0, 80)}`);
    return path.join(root, key);
  };
  /**
   * Moves a spool file, made and synced by `ready`, to its object's name (`target`), then syncs that
   * name: the rename's directory entry, and a new fan-out directory's own entry. The root's entry in
   * its parent too: a new fan-out directory is how a new STORAGE_DIR (made by the first spool) shows,
   * and otherwise costs one sync of up to 256 in a store's life. The spool file is gone afterwards.
   */
  const place = async (target: string, file: string, ready: () => Promise<void>) => {
    try {
      await ready();
      // The fan-out directory usually exists already: made only when the rename says it is missing.
      const madeDir = await fs.promises.rename(file, target).then(
        () => false,
        async (err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
          await fs.promises.mkdir(path.dirname(target), { recursive: true });
          await fs.promises.rename(file, target);
          return true;
        },
      );
      await syncPath(path.dirname(target), 'all');
      if (madeDir) {
        await syncPath(root, 'all');
        await syncPath(path.dirname(root), 'all');
      }
    } catch (err) {
      await fs.promises.rm(file, { force: true });
      throw err;
    }
  };
  return {
    kind: 'directory',
    spool,
    local: true,
    async has(key) {
      return fs.promises.access(fileOf(key)).then(
        () => true,
        () => false,
      );
    },
    async putFile(key, file) {
      // The bytes reach the disk before the name does: once the copy is recorded (a commit, which
      // Postgres makes durable), a crash of the machine must not leave the object short or empty.
      await place(fileOf(key), file, () => syncPath(file, 'data'));
    },
    async putBytes(key, bytes) {
      // The key is checked before a spool file exists: a bad one leaves no file and no open descriptor.
      const target = fileOf(key);
      const { path: file, handle } = await spool.create();
      await place(target, file, () => writeSynced(handle, bytes));
    },
    async read(key, range) {
      const stream: Readable = fs.createReadStream(fileOf(key), range ? { start: range.start, end: range.end } : {});
      // Open errors (a missing file) surface here rather than mid-response.
      await new Promise<void>((resolve, reject) => stream.once('open', () => resolve()).once('error', reject));
      return stream;
    },
    async remove(keys) {
      await Promise.all(keys.map((k) => fs.promises.rm(fileOf(k), { force: true })));
    },
  };
}

/** Writes a new spool file through its descriptor and syncs its bytes, then closes it. */
async function writeSynced(handle: fs.promises.FileHandle, bytes: Buffer): Promise<void> {
  try {
    await handle.writeFile(bytes);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/**
 * fdatasync (`data`: the bytes and what reading them needs, such as the size) or fsync (`all`: a
 * directory's entries) of a path, through a descriptor of its own.
 */
async function syncPath(target: string, what: 'data' | 'all'): Promise<void> {
  const handle = await fs.promises.open(target, 'r');
  try {
    await (what === 'data' ? handle.datasync() : handle.sync());
  } finally {
    await handle.close();
  }
}
