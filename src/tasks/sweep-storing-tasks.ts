import type { Db } from '../db/client';
import { utc } from '../db/client';
import type { TaskStore } from './status-machine';
import { succeedWithUpstreamUrls } from './store-results';

export interface StoringSweepDeps {
  store: TaskStore;
  /** STORAGE_TIMEOUT_MS. */
  timeoutMs: number;
  /** A task in `storing` this old gets a job again if it has no live one (SWEEP_MIN_AGE_MS). */
  minAgeMs: number;
  /** Adds `result.store` jobs (those with a live job are skipped). */
  enqueueStores: (taskIds: string[]) => Promise<unknown>;
}

const BATCH = 500;

/**
 * Tasks in `storing`: those past STORAGE_TIMEOUT_MS succeed with the upstream's URLs (their jobs
 * keep trying and replace them), and every other one gets its copy job back if it was lost (crash
 * between commit and enqueue, Redis down). Read through `tasks_state_created_at_idx`.
 */
export async function sweepStoringTasks(deps: StoringSweepDeps): Promise<{ fellBack: number; requeued: number }> {
  const db: Db = deps.store.db;
  const now = Date.now();
  const { rows } = await db.sql<{ id: string; late: boolean }>(
    `SELECT id, storing_since < $1::timestamp AS late FROM tasks WHERE state = 'storing' AND storing_since < $2::timestamp
     ORDER BY created_at LIMIT ${BATCH}`,
    [utc(new Date(now - deps.timeoutMs)), utc(new Date(now - deps.minAgeMs))],
  );
  let fellBack = 0;
  for (const r of rows.filter((x) => x.late)) if (await succeedWithUpstreamUrls(deps.store, r.id)) fellBack++;
  const waiting = rows.filter((x) => !x.late).map((x) => x.id);
  if (waiting.length) await deps.enqueueStores(waiting);
  return { fellBack, requeued: waiting.length };
}
