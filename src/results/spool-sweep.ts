import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logger';

/** A spool file untouched for this long at least is a leftover, whatever the download timeout. */
const MIN_LEFTOVER_AGE_MS = 3_600_000;
/** How often a running process sweeps its spool again. */
const SWEEP_EVERY_MS = 3_600_000;

/**
 * The age past which a spool file is a leftover. A download writes its spool file as bytes arrive
 * and is cut at STORAGE_DOWNLOAD_TIMEOUT_MS; the store then moves or deletes the file at once (an
 * upload to S3 reads it through a descriptor it holds, which a delete does not disturb). A file
 * not modified for twice that timeout, and for an hour at least, belongs to no copy: its process
 * died between the download and the store.
 */
export const spoolLeftoverAgeMs = (downloadTimeoutMs: number) => Math.max(MIN_LEFTOVER_AGE_MS, 2 * downloadTimeoutMs);

/**
 * Deletes the spool's leftovers (files last modified more than `olderThanMs` ago) and returns how
 * many went. Several processes may share a spool (one machine, or one volume): the age is what
 * tells a dead process's file from a live download's, not who made it. A spool that does not
 * exist yet has nothing to sweep.
 */
export async function sweepSpool(spoolDir: string, olderThanMs: number): Promise<number> {
  let names: string[];
  try {
    names = await fs.promises.readdir(spoolDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  const now = Date.now();
  let removed = 0;
  for (const name of names) {
    const file = path.join(spoolDir, name);
    // Gone meanwhile (stored, or swept by another process): nothing to do.
    const stat = await fs.promises.lstat(file).catch(() => null);
    if (!stat?.isFile() || now - stat.mtimeMs <= olderThanMs) continue;
    await fs.promises.rm(file, { force: true });
    removed++;
  }
  return removed;
}

/**
 * Sweeps the spool at once and then every hour, in the background (a failure is logged, never
 * thrown). Returns the function that stops the sweeps.
 */
export function startSpoolSweeps(spoolDir: string, downloadTimeoutMs: number, log: Logger): () => void {
  const sweep = () =>
    void sweepSpool(spoolDir, spoolLeftoverAgeMs(downloadTimeoutMs)).then(
      (removed) => removed && log.info({ spool: spoolDir, removed }, 'removed spool files left by an interrupted copy'),
      (err: unknown) => log.warn({ spool: spoolDir, err }, 'could not sweep the spool'),
    );
  sweep();
  const timer = setInterval(sweep, SWEEP_EVERY_MS).unref();
  return () => clearInterval(timer);
}
