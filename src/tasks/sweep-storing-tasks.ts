import type { Db } from '../db/client';
import { utc } from '../db/client';
import type { TaskStore } from './status-machine';
import { succeedWithUpstreamUrls } from './store-results';

export interface StoringSweepDeps {
  store: TaskStore;
  /** STORAGE_TIMEOUT_MS. */
  timeoutMs: number;
  /** A task in `storing` this old gets a job again if it has no live one (SWEEP_MIN_AGE_MS, plus STORAGE_INLINE_MS: the lease of a copy in the process that saw the success). */
  minAgeMs: number;
  /** Adds `result.store` jobs (those with a live job are skipped). */
  enqueueStores: (taskIds: string[]) => Promise<unknown>;
}

const BATCH = 500;

/**
 * Tasks in `storing`: those past STORAGE_TIMEOUT_MS succeed with the upstream's URLs (their copies
 * go on, as a job, and replace them), and every other one past `minAgeMs` gets a copy job unless it
 * has a live one (crash between commit and enqueue, Redis down, a process that died mid-copy).
 * Read through `tasks_state_created_at_idx`.
 */
export async function sweepStoringTasks(deps: StoringSweepDeps): Promise<{ fellBack: number; requeued: number }> {
  const db: Db = deps.store.db;
  const now = Date.now();
  // Either limit may be the shorter (STORAGE_TIMEOUT_MS below the lease of a copy in progress).
  const { rows } = await db.sql<{ id: string; late: boolean; unattended: boolean }>(
    `SELECT id, storing_since < $1::timestamp AS late, storing_since < $2::timestamp AS unattended FROM tasks
     WHERE state = 'storing' AND storing_since < greatest($1::timestamp, $2::timestamp)
     ORDER BY created_at LIMIT ${BATCH}`,
    [utc(new Date(now - deps.timeoutMs)), utc(new Date(now - deps.minAgeMs))],
  );
  const fellBack: string[] = [];
  for (const r of rows.filter((x) => x.late)) if (await succeedWithUpstreamUrls(deps.store, r.id)) fellBack.push(r.id);
  // A task that fell back keeps being copied: by its job, or by a new one if its copy was in a process that died.
  const waiting = [...fellBack, ...rows.filter((x) => !x.late && x.unattended).map((x) => x.id)];
  if (waiting.length) await deps.enqueueStores(waiting);
  return { fellBack: fellBack.length, requeued: waiting.length - fellBack.length };
}
