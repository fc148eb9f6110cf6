import type { Db } from '../db/client';
import { utc } from '../db/client';
import type { TaskStore } from './status-machine';
import { succeedWithUpstreamUrls, type ResultStorage } from './store-results';

export interface StoringSweepDeps {
  store: TaskStore;
  /** STORAGE_TIMEOUT_MS. */
  timeoutMs: number;
  /** A task in `storing` this old whose copy's hold has run out gets a job again if it has no live one (SWEEP_MIN_AGE_MS). */
  minAgeMs: number;
  /** The hold of a copy that its process has not renewed (`copyHoldMs`). */
  holdMs: number;
  /** Adds `result.store` jobs (those with a live job are skipped). */
  enqueueStores: (taskIds: string[]) => Promise<unknown>;
}

const BATCH = 500;

/**
 * Tasks in `storing`: those past STORAGE_TIMEOUT_MS succeed with the upstream's URLs (their copies
 * go on, as a job, and replace them), and every other one past `minAgeMs` whose copy is held by no
 * process gets a copy job unless it has a live one (crash between commit and enqueue, Redis down, a
 * process that died mid-copy). Read through `tasks_state_created_at_idx`.
 */
export async function sweepStoringTasks(deps: StoringSweepDeps): Promise<{ fellBack: number; requeued: number }> {
  const db: Db = deps.store.db;
  const now = Date.now();
  // Either may come first (STORAGE_TIMEOUT_MS shorter than a copy that is still held).
  const { rows } = await db.sql<{ id: string; late: boolean; unattended: boolean }>(
    `SELECT id, late, unattended FROM (
       SELECT id, created_at, storing_since < $1::timestamp AS late,
              storing_since < $2::timestamp
                AND coalesce(copy_held_until, storing_since + $3::int * interval '1 millisecond') < $4::timestamp AS unattended
       FROM tasks WHERE state = 'storing') s
     WHERE late OR unattended ORDER BY created_at LIMIT ${BATCH}`,
    [utc(new Date(now - deps.timeoutMs)), utc(new Date(now - deps.minAgeMs)), deps.holdMs, utc(new Date(now))],
  );
  const fellBack: string[] = [];
  for (const r of rows.filter((x) => x.late)) if (await succeedWithUpstreamUrls(deps.store, r.id)) fellBack.push(r.id);
  // A task that fell back keeps being copied: by its job, or by a new one if its copy was in a process that died.
  const waiting = [...fellBack, ...rows.filter((x) => !x.late && x.unattended).map((x) => x.id)];
  if (waiting.length) await deps.enqueueStores(waiting);
  return { fellBack: fellBack.length, requeued: waiting.length - fellBack.length };
}

/**
 * How long a copy under way in the process that saw its task succeed is that process's without a
 * renewal (STORAGE_HOLD_MS): from the task's entry into `storing`, then from each renewal (every
 * quarter of it, by `holdCopies`). A process that dies mid-copy thus hands its tasks to the results
 * sweep within this, not at the end of its whole STORAGE_INLINE_MS, which it never outlasts (and is,
 * for storage set up without a hold).
 */
export function copyHoldMs(storage: Pick<ResultStorage, 'inlineMs' | 'holdMs'>): number {
  const inlineMs = storage.inlineMs ?? 0;
  return Math.min(inlineMs, storage.holdMs ?? inlineMs);
}

/** Renews the hold of copies under way in this process, for `holdMs` from now (tasks no longer in `storing` are left alone). */
export async function holdCopies(db: Db, taskIds: string[], holdMs: number): Promise<void> {
  await db.sql(`UPDATE tasks SET copy_held_until = $2::timestamp WHERE id = ANY($1::text[]) AND state = 'storing'`, [
    taskIds,
    utc(new Date(Date.now() + holdMs)),
  ]);
}
