import type { Db, Task } from '../db/client';
import { groupCommit } from '../lib/group-commit';

/**
 * Upstream concurrency slots. Each image of a task holds one slot from its submission until it ends
 * (Kling counts them so; past the account's limit it answers 1303). The truth is `tasks.slots_held`:
 * claimed here before the upstream call, cleared by the status machine on every terminal path, so a
 * restart has nothing to recompute and nothing can leak.
 */

export type ClaimResult = 'claimed' | 'held' | 'wait' | 'gone';

/** A claim's outcome, with the version of the task row it wrote (when it wrote one). */
export interface Claimed {
  result: ClaimResult;
  version: string | null;
}

/** Slots a task needs; a request larger than the whole pool takes the whole pool rather than waiting forever. */
export const slotsNeeded = (n: number, limit: number) => Math.min(Math.max(n, 1), limit);

/** Claims written together at most (one lock, one commit). */
const MAX_CLAIM_BATCH = 50;

type Claim = { taskId: string; countAttempt: boolean };
const claimers = new WeakMap<Db, Map<number, (c: Claim) => Promise<Claimed>>>();

/**
 * Claims the task's slots if they are free, leaving enough for every older task already waiting for
 * slots (so a large task is not starved by small ones). A task told to `wait` is marked as waiting
 * and is woken when slots are released (dispatchWaiting) or by the sweep. With `countAttempt`, a
 * claimed (or already held) task also counts the submission attempt about to start, in the same
 * commit.
 *
 * The SQL function `claim_task_slots` (migration `slot_claims`) checks and claims under one lock
 * for the whole deployment, held until its commit: concurrent claims of this process go together
 * (group commit), so a busy worker takes that lock once per batch rather than once per task.
 * The answer carries the row version the claim left, so the caller can change the task without
 * re-reading it.
 */
export function claimSlots(db: Db, taskId: string, limit: number, countAttempt = false): Promise<Claimed> {
  let byLimit = claimers.get(db);
  if (!byLimit) claimers.set(db, (byLimit = new Map()));
  let claim = byLimit.get(limit);
  if (!claim) {
    claim = groupCommit(async (claims: Claim[]) => {
      const { rows } = await db.sql<{ task_id: string; result: ClaimResult; version: string | null }>(
        'SELECT task_id, result, version FROM claim_task_slots($1::text[], $2, $3::boolean[])',
        [claims.map((c) => c.taskId), limit, claims.map((c) => c.countAttempt)],
      );
      const results = new Map(rows.map((r) => [r.task_id, { result: r.result, version: r.version }]));
      return claims.map((c) => results.get(c.taskId) ?? new Error(`no claim result for task ${c.taskId}`));
    }, MAX_CLAIM_BATCH);
    byLimit.set(limit, claim);
  }
  return claim({ taskId, countAttempt });
}

export async function slotsInUse(db: Db): Promise<number> {
  const { rows } = await db.sql<{ held: number }>('SELECT coalesce(sum(slots_held), 0)::int AS held FROM tasks WHERE slots_held > 0');
  return rows[0].held;
}

/** 1-based place of a queued task among all tasks still waiting to be submitted. */
export async function queuePosition(db: Db, task: Pick<Task, 'id' | 'createdAt'>): Promise<number> {
  const before = await db.task.count({
    where: { state: 'queued', OR: [{ createdAt: { lt: task.createdAt } }, { createdAt: task.createdAt, id: { lt: task.id } }] },
  });
  return before + 1;
}

/** The oldest tasks told to wait for slots, in the order they may take them. Cheap when none waits. */
export async function nextWaiting(db: Db, limit: number): Promise<string[]> {
  const { rows } = await db.sql<{ id: string }>(
    `SELECT id FROM tasks WHERE slots_wait_since IS NOT NULL AND state = 'queued' AND slots_held = 0
     ORDER BY created_at, id LIMIT $1`,
    [limit],
  );
  return rows.map((r) => r.id);
}
