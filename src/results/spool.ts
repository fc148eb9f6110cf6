import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Where a store's incoming files are written before they are stored: a download too large to hold
 * in memory, or (directory store) an output from memory, written there so that storing it is a
 * rename. The store owns its spool; the download and the store both make their files through it.
 */
export interface Spool {
  /** The directory (swept of the leftovers of interrupted copies: spool-sweep.ts). */
  dir: string;
  /** A new file of its own, opened for writing: its path and handle (the caller closes it and moves or deletes the file). */
  create(): Promise<{ path: string; handle: fs.promises.FileHandle }>;
}

/**
 * A spool in `dir`. The directory is made when a file cannot be made for its absence: by the first
 * file of a new STORAGE_DIR, and again if it was removed under a running process. Otherwise a file
 * costs one open, which never reuses a name (`wx`).
 */
export function createSpool(dir: string): Spool {
  return {
    dir,
    async create() {
      const file = path.join(dir, randomUUID());
      const handle = await fs.promises.open(file, 'wx').catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
        await fs.promises.mkdir(dir, { recursive: true });
        return fs.promises.open(file, 'wx');
      });
      return { path: file, handle };
    },
  };
}
