import type { Db, Task } from '../db/client';
import type { SlotPool } from '../kinds/kind';
import { groupCommit } from '../lib/group-commit';
import { taskColumns } from './task-repository';

/**
 * Upstream concurrency slots, per pool as Kling counts them per resource-pack type: a task holds
 * its kind's slot cost (an image task its `n`, a video task 1) from its submission until it ends
 * (past the account's limit Kling answers 1303). The truth is `tasks.slots_held`: claimed here
 * before the upstream call, cleared by the status machine on every terminal path, so a restart has
 * nothing to recompute and nothing can leak.
 */

/** The slots of each pool of the environment's account (UPSTREAM_CONCURRENCY_IMAGE, UPSTREAM_CONCURRENCY_VIDEO). */
export type PoolLimits = Readonly<Record<SlotPool, number>>;

export type ClaimResult = 'claimed' | 'held' | 'wait' | 'gone' | 'missing';

/** A claim's outcome and, for 'claimed' and 'held', the task as the claim left it. */
export interface Claimed {
  result: ClaimResult;
  /** The claim counted the task's first submission attempt (asked with `countFirstAttempt`). */
  counted: boolean;
  /** The version of the row this claim wrote (null when it wrote none). */
  version: string | null;
  /** The row as the claim left it ('claimed' and 'held' only). */
  task: Task | null;
}

/** Wait between probes of a pool the upstream took out of rotation, unless the caller says (ACCOUNT_PROBE_INTERVAL_MS). */
const DEFAULT_PROBE_MS = 60_000;

/** Claims written together at most (one lock, one commit). */
const MAX_CLAIM_BATCH = 50;

type Claim = { taskId: string; countFirst: boolean };
type ClaimRow = Task & { task_id: string; claim_result: ClaimResult; counted: boolean; claim_version: string | null };
const claimers = new WeakMap<Db, Map<string, (c: Claim) => Promise<Claimed>>>();

/**
 * Claims the task's slots if they are free, leaving enough for every older task already waiting for
 * slots (so a large task is not starved by small ones). A task told to `wait` is marked as waiting
 * and is woken when slots are released (nextWaiting, then requeueSubmits) or by the sweep. With `countFirstAttempt`,
 * a claimed (or already held) task that was never submitted also counts the submission attempt
 * about to start, in the same commit. The claim is also the submission's read of the task: it
 * answers with the row it left.
 *
 * The claim also places the task on an account of the pool (migration `upstream_accounts`): one in
 * rotation, with the task's model allowed and enough free slots, by free slots times weight; the
 * account is recorded on the task. `limits` keeps the environment's account in step with this
 * process's environment (null: this process has none).
 *
 * The SQL function `claim_task_slots` (migration `slot_counter`) checks and claims under one lock
 * for the whole deployment, held until its commit: concurrent claims of this process go together
 * (group commit), so a busy worker takes that lock once per batch rather than once per task. The
 * slots in use come from `slot_counts`, which triggers keep equal to the sum of tasks.slots_held.
 */
export function claimSlots(
  db: Db,
  taskId: string,
  limits: PoolLimits | null,
  countFirstAttempt = false,
  probeMs = DEFAULT_PROBE_MS,
): Promise<Claimed> {
  let byLimits = claimers.get(db);
  if (!byLimits) claimers.set(db, (byLimits = new Map()));
  const key = JSON.stringify([limits, probeMs]);
  let claim = byLimits.get(key);
  if (!claim) {
    claim = groupCommit(async (claims: Claim[]) => {
      const pools = limits ? (Object.keys(limits) as SlotPool[]) : null;
      const { rows } = await db.sql<ClaimRow>(
        `SELECT c.task_id, c.result AS claim_result, c.counted, c.version AS claim_version, ${taskColumns('(c.task).')}
         FROM claim_task_slots($1::text[], $2::boolean[], $3::text[], $4::int[], $5::int) c`,
        [claims.map((c) => c.taskId), claims.map((c) => c.countFirst), pools, pools?.map((p) => limits![p]) ?? null, probeMs],
      );
      const results = new Map(rows.map((r) => [r.task_id, claimed(r)]));
      return claims.map((c) => results.get(c.taskId) ?? new Error(`no claim result for task ${c.taskId}`));
    }, MAX_CLAIM_BATCH);
    byLimits.set(key, claim);
  }
  return claim({ taskId, countFirst: countFirstAttempt });
}

function claimed(r: ClaimRow): Claimed {
  const { task_id: _id, claim_result, counted, claim_version, ...task } = r;
  return { result: claim_result, counted, version: claim_version, task: task.id === null ? null : task };
}

/**
 * Takes a queued task off the account that certainly refused it (an answer said so: nothing was
 * created there), freeing its slots there, so that its next claim places it again. Guarded by the
 * account: a task already moved elsewhere is left alone.
 */
export async function unplaceTask(db: Db, taskId: string, accountId: string): Promise<boolean> {
  const { rowCount } = await db.sql(
    `UPDATE tasks SET slots_held = 0, account_id = NULL, updated_at = now() AT TIME ZONE 'UTC'
     WHERE id = $1 AND account_id = $2 AND state = 'queued'`,
    [taskId, accountId],
  );
  return (rowCount ?? 0) > 0;
}

/** Upstream slots held, in one pool or in all (the counter the claims read: migrations `slot_counter`, `task_kinds`). */
export async function slotsInUse(db: Db, pool?: SlotPool): Promise<number> {
  const { rows } = await db.sql<{ held: number }>(
    'SELECT coalesce(sum(held), 0)::int AS held FROM slot_counts WHERE $1::text IS NULL OR pool = $1',
    [pool ?? null],
  );
  return rows[0].held;
}

/** 1-based place of a queued task among the tasks of its pool still waiting to be submitted. */
export async function queuePosition(db: Db, task: Pick<Task, 'id' | 'createdAt' | 'pool'>): Promise<number> {
  const before = await db.task.count({
    where: {
      state: 'queued',
      pool: task.pool,
      OR: [{ createdAt: { lt: task.createdAt } }, { createdAt: task.createdAt, id: { lt: task.id } }],
    },
  });
  return before + 1;
}

/** The oldest tasks of a pool told to wait for slots, in the order they may take them. Cheap when none waits. */
export async function nextWaiting(db: Db, pool: SlotPool, limit: number): Promise<string[]> {
  const { rows } = await db.sql<{ id: string }>(
    `SELECT id FROM tasks WHERE pool = $1 AND slots_wait_since IS NOT NULL AND state = 'queued' AND slots_held = 0
     ORDER BY created_at, id LIMIT $2`,
    [pool, limit],
  );
  return rows.map((r) => r.id);
}
