import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { BlobStore } from './blob-store';

const SAFE_KEY = /^[0-9a-f]{2}\/[0-9a-f]{64}$/;

/** A local directory (STORAGE_DIR): objects are files, stored by an atomic rename from `<dir>/.spool`. */
export function createDirBlobStore(dir: string): BlobStore {
  const root = path.resolve(dir);
  const spoolDir = path.join(root, '.spool');
  const fileOf = (key: string) => {
    // Keys are made from hashes only; anything else must never become a path.
    if (!SAFE_KEY.test(key)) throw new Error(`not a blob key: ${key.slice(0, 80)}`);
    return path.join(root, key);
  };
  return {
    kind: 'directory',
    spoolDir,
    async has(key) {
      return fs.promises.access(fileOf(key)).then(
        () => true,
        () => false,
      );
    },
    async putFile(key, file) {
      const target = fileOf(key);
      try {
        // The fan-out directory usually exists already: made only when the rename says it is missing.
        await fs.promises.rename(file, target).catch(async (err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
          await fs.promises.mkdir(path.dirname(target), { recursive: true });
          await fs.promises.rename(file, target);
        });
      } catch (err) {
        await fs.promises.rm(file, { force: true });
        throw err;
      }
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
