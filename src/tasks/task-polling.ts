import type { Db } from '../db/client';

/**
 * Reconciliation bookkeeping. A task at the upstream carries `next_poll_at`: set on every change
 * (see status-machine), pushed back with backoff after a poll that brought no news.
 */

/** Longest wait between two polls of one task, however long it has been silent. */
export const MAX_POLL_INTERVAL_MS = 10 * 60 * 1000;

/** Fast at first, slower later: pollAfter, 2x, 4x ... capped. */
export function pollDelayMs(pollAfterMs: number, pollsWithoutNews: number): number {
  return Math.min(pollAfterMs * 2 ** Math.min(pollsWithoutNews, 20), MAX_POLL_INTERVAL_MS);
}

export interface DuePoll {
  id: string;
  kind: string;
  upstreamTaskId: string | null;
  pollCount: number;
  /** The account the task was placed on: the only one that knows it. */
  accountId: string | null;
}

/**
 * Claims up to `limit` tasks whose poll is due, pushing their next poll `leaseMs` ahead, so two
 * reconcilers (several worker processes) never poll the same task at once and a reconciler that
 * dies mid-round leaves its tasks due again once the lease ends.
 */
export async function claimDuePolls(db: Db, limit: number, leaseMs: number): Promise<DuePoll[]> {
  const rows = await db.$queryRaw<
    { id: string; kind: string; upstream_task_id: string | null; poll_count: number; account_id: string | null }[]
  >`
    UPDATE tasks SET next_poll_at = now() + ${leaseMs} * interval '1 millisecond'
    WHERE id IN (
      SELECT id FROM tasks
      WHERE state IN ('submitted', 'processing') AND next_poll_at <= now()
      ORDER BY next_poll_at
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED
    )
    RETURNING id, kind, upstream_task_id, poll_count, account_id`;
  return rows.map((r) => ({
    id: r.id,
    kind: r.kind,
    upstreamTaskId: r.upstream_task_id,
    pollCount: r.poll_count,
    accountId: r.account_id,
  }));
}

/** After a poll without news: ask again later, a little later each time. */
export async function schedulePoll(db: Db, taskId: string, pollCount: number, pollAfterMs: number, notBefore = 0): Promise<void> {
  const delay = Math.max(pollDelayMs(pollAfterMs, pollCount + 1), notBefore);
  await db.task.updateMany({
    where: { id: taskId, state: { in: ['submitted', 'processing'] } },
    data: { pollCount: pollCount + 1, nextPollAt: new Date(Date.now() + delay) },
  });
}

/** Postpones the polls of tasks claimed but not polled (the upstream asked us to slow down). */
export async function postponePolls(db: Db, taskIds: string[], delayMs: number): Promise<void> {
  if (!taskIds.length) return;
  await db.task.updateMany({
    where: { id: { in: taskIds }, state: { in: ['submitted', 'processing'] } },
    data: { nextPollAt: new Date(Date.now() + delayMs) },
  });
}
