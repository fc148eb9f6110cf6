import type { Db, Task, TaskState } from '../db/client';
import { placeholderFor, utc } from '../db/client';
import type { SlotPool } from '../kinds/kind';
import type { Logger } from '../logger';
import { metrics } from '../observability/metrics';
import type { RecordedCopy } from '../results/result-files';
import type { InlineDeliveries } from '../webhooks/delivery-attempt';
import { outboxEntry, type OutboxEntry } from '../webhooks/outbox';
import { patchAssignments, type ReadTask, type TaskPatch } from './task-repository';
import { isPastUpstream, isTerminal, toClientStatus } from './task-state';
import { toTaskObject, type TaskViewContext } from './task-view';

/**
 * The task status machine: every state change is one guarded SQL statement (a data-modifying CTE)
 * that also records the change as a TaskEvent.
 *
 * Concurrency: a change is guarded by the version of the row it was decided from (`xmin`), so it
 * applies only if nothing wrote the task since it was read. Two writers racing on one task
 * serialise on the row lock; the loser's guard no longer matches, it re-reads and decides again,
 * so no change is ever applied from a stale read.
 *
 * Outbox: a change of the status a client sees, on a task with a callback_url, writes its webhook
 * delivery in the same statement (src/webhooks/outbox.ts); `afterCommit` then asks for its sending.
 * If that request is lost (crash, Redis down) the sweep sends it: nothing between commit and
 * enqueue can lose a webhook.
 */

/** What a committed change asks of the queues: send new webhooks, let waiting tasks take freed slots. */
export interface CommitEffects {
  /** The task that changed (waiters on it are woken). */
  taskId: string;
  deliveryIds: string[];
  /** Slots freed while tasks of the same pool were waiting for slots (0 when none was waiting). */
  slotsReleased: number;
  /** The pool of the task (whose waiting tasks may take the freed slots). */
  pool: SlotPool;
  /** The task entered `storing`, or asks for a copy later: its outputs are to be copied (in this process, or a `result.store` job). */
  storeResults: boolean;
  /** The task as the change left it (its new version). */
  task: ReadTask;
}

export interface TaskStore {
  db: Db;
  /** A submitted task with no upstream news for this long is polled (UPSTREAM_POLL_AFTER_MS). */
  pollAfterMs?: number;
  /** Sends first webhook attempts from this process (when absent, every delivery goes through the queue). */
  inline?: InlineDeliveries;
  /**
   * RESULT_URLS=mirror: copies the outputs of a task the upstream says succeeded (`result`) before
   * that is written (src/tasks/inline-copies.ts); what became of the copy within the time a success
   * waits for it.
   */
  copyQuickly?: (task: ReadTask, result: ReadTask['result']) => Promise<QuickCopy>;
  /** Called after a change commits (best effort: the sweep covers anything it does not do). */
  afterCommit?: (effects: CommitEffects) => Promise<void>;
  /** Where alerts about what the upstream says go. */
  log?: Logger;
  /**
   * RESULT_URLS and the links to this service's copies: with `mirror`, an upstream `succeed` moves
   * the task to `storing` and webhook bodies carry signed links. Absent: `upstream`.
   */
  view?: TaskViewContext;
}

/**
 * A copy made before its success is written: the copies, quick enough to be written with it (the
 * task then succeeds without `storing`); `unreachable` when it failed because the file cannot be had
 * now (`for_now`: its host cannot be reached; `for_good`: it is gone or refused), so the task succeeds
 * with the upstream's URLs at once, without `storing` either (a `for_now` copy is tried again by a
 * job, to replace them); null when the copy goes on, or failed in a way its retries may cure, from `storing`.
 */
export type QuickCopy = RecordedCopy[] | { unreachable: 'for_now' | 'for_good' } | null;

export type EventSource = 'api' | 'submit' | 'callback' | 'poll' | 'sweep' | 'storage';

export interface Change {
  to: TaskState;
  data: TaskPatch;
  source: EventSource;
  payload?: unknown;
  /**
   * More of the statement: CTEs (`, name AS (...)`) written with the change. Each that records the
   * change must read `t`, the changed row, so that it writes nothing when the change does not
   * apply; one written whatever the outcome says so (`recordCopiesCte`'s blob rows).
   */
  with?: (param: (value: unknown) => string) => string;
  /** The task's outputs are to be copied after this change, though it does not enter `storing` (a copy that failed for now). */
  copyLater?: boolean;
}

const DEFAULT_POLL_AFTER_MS = 30_000;

/** Bookkeeping every change implies: polling while at the upstream, no slots and no polls once ended. */
function lifecycleFields(store: TaskStore, to: TaskState, now: Date): TaskPatch {
  if (isPastUpstream(to)) return { slotsHeld: 0, nextPollAt: null };
  if (to === 'submitted' || to === 'processing') {
    return { nextPollAt: new Date(now.getTime() + (store.pollAfterMs ?? DEFAULT_POLL_AFTER_MS)), pollCount: 0 };
  }
  return {};
}

/**
 * Whether any task of the pool waits for slots (read through the partial index
 * `tasks_waiting_for_slots_idx` once the table has statistics; see src/db/table-stats.ts).
 */
export const slotWaitersExist = (pool: string) =>
  `EXISTS (SELECT 1 FROM tasks WHERE pool = ${pool} AND slots_wait_since IS NOT NULL AND state = 'queued' AND slots_held = 0)`;

/**
 * Applies a change if the task is exactly as read; returns null when another writer got there
 * first. One statement: the update, its event and (when the client's status changes and it has a
 * callback_url) its webhook delivery, whose body is the task as this change leaves it.
 */
export async function transition(store: TaskStore, task: ReadTask, change: Change): Promise<ReadTask | null> {
  const now = new Date();
  const patch: TaskPatch = { ...change.data, ...lifecycleFields(store, change.to, now) };
  const { version: _version, ...read } = task;
  const next: Task = { ...read, ...(patch as Partial<Task>), state: change.to, eventSeq: task.eventSeq + 1, updatedAt: now };

  const params: unknown[] = [task.id, task.version, change.to, utc(now)];
  const param = placeholderFor(params);
  const sets = patchAssignments(patch, params)
    .map((a) => `, ${a}`)
    .join('');
  const payload = change.payload === undefined ? null : JSON.stringify(change.payload);
  const outbox: OutboxEntry | null =
    next.callbackUrl && toClientStatus(task.state) !== toClientStatus(change.to)
      ? outboxEntry({
          inline: store.inline,
          taskId: task.id,
          tenantId: task.tenantId,
          seq: next.eventSeq,
          url: next.callbackUrl,
          status: toClientStatus(change.to),
          body: JSON.stringify(toTaskObject(next, { view: store.view })),
          now,
          param,
          refs: { taskId: '$1', now: '$4' },
        })
      : null;
  const releases = isPastUpstream(change.to) && task.slotsHeld > 0;
  // Whether anyone waits for the slots this frees: usually nobody, and then nothing more is asked.
  const waiters = releases ? slotWaitersExist(param(task.pool)) : 'false';
  let rows: { waiters: boolean; version: string; behind?: boolean; secrets?: (string | null)[] }[];
  try {
    ({ rows } = await store.db.sql(
      `WITH t AS (
       UPDATE tasks SET state = $3::task_state, event_seq = event_seq + 1, updated_at = $4::timestamp${sets}
       WHERE id = $1 AND xmin = $2::xid RETURNING id, tenant_id, event_seq, xmin::text AS version),
     e AS (
       INSERT INTO task_events (task_id, seq, from_state, to_state, source, payload, created_at)
       SELECT id, event_seq, ${param(task.state)}::task_state, $3::task_state, ${param(change.source)}, ${param(payload)}::jsonb, $4::timestamp FROM t)${outbox?.sql ?? ''}${change.with?.(param) ?? ''}
     SELECT ${waiters} AS waiters, t.version${outbox?.columns ?? ''} FROM t`,
      params,
    ));
  } catch (err) {
    outbox?.abandoned();
    throw err;
  }
  if (rows.length !== 1) {
    outbox?.abandoned();
    return null;
  }
  if (isTerminal(change.to)) {
    metrics.tasksFinished.inc({ kind: next.kind, status: change.to, reason: next.failureReason ?? 'none' });
    metrics.taskDuration.observe({ kind: next.kind, status: change.to }, (now.getTime() - next.createdAt.getTime()) / 1000);
  }
  const updated: ReadTask = { ...next, version: rows[0].version };
  const effects: CommitEffects = {
    taskId: task.id,
    deliveryIds: outbox?.committed(rows[0]) ?? [],
    slotsReleased: rows[0].waiters ? task.slotsHeld : 0,
    pool: task.pool as SlotPool,
    storeResults: change.to === 'storing' || change.copyLater === true,
    task: updated,
  };
  await store.afterCommit?.(effects).catch(() => undefined);
  return updated;
}
