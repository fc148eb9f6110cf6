import type { Db } from '../db/client';
import { utc } from '../db/client';
import type { Logger } from '../logger';
import { metrics } from '../observability/metrics';
import { pruneFinishedDeliveries, type PrunedRows } from '../webhooks/prune-deliveries';

/** Days finished history is kept (TASK_, EVENT_, DELIVERY_RETENTION_DAYS); unset: forever. */
export interface Retention {
  taskDays?: number;
  eventDays?: number;
  deliveryDays?: number;
}

export interface PruneDeps {
  db: Db;
  log: Logger;
  retention: Retention;
}

/** How much one run may remove: statements of `batchSize` rows, at most `maxBatches` of them per kind of row. */
export interface PruneBounds {
  batchSize: number;
  maxBatches: number;
}

// A small statement holds its row locks briefly. Up to 50 of each kind a run (a minute) is 72 million
// rows of each kind a day, more than a deployment finishes, and a catch-up on a long history goes at
// that steady pace instead of all at once.
const BOUNDS: PruneBounds = { batchSize: 1000, maxBatches: 50 };

const DAY_MS = 24 * 3600 * 1000;

/**
 * Removes finished history past its retention, oldest first, in small statements: tasks finished
 * before TASK_RETENTION_DAYS with everything of theirs; then the events of tasks finished before
 * EVENT_RETENTION_DAYS; then finished deliveries, with their attempts, last changed before
 * DELIVERY_RETENTION_DAYS. A task in flight, a pending delivery and anything newer are never touched.
 */
export async function pruneHistory(deps: PruneDeps, bounds: PruneBounds = BOUNDS, now = Date.now()): Promise<PrunedRows> {
  const { db, retention } = deps;
  const before = (days: number) => new Date(now - days * DAY_MS);
  const removed: PrunedRows = {};
  const run = (table: string, statement: (limit: number) => Promise<PrunedRows>) => inBatches(table, statement, bounds, removed);
  const { taskDays, eventDays, deliveryDays } = retention;
  if (taskDays) for (const state of TERMINAL) await run('tasks', (n) => pruneFinishedTasks(db, state, before(taskDays), n));
  if (eventDays) await run('task_events', (n) => pruneFinishedTaskEvents(db, before(eventDays), n));
  if (deliveryDays) await run('webhook_deliveries', (n) => pruneFinishedDeliveries(db, before(deliveryDays), n));
  if (Object.values(removed).some((n) => n > 0)) deps.log.info({ removed }, 'removed finished history past its retention');
  return removed;
}

const TERMINAL = ['succeed', 'failed'] as const;

/** Runs `statement` until it removes less than a batch of `table` or the run's batches are used up. */
async function inBatches(table: string, statement: (limit: number) => Promise<PrunedRows>, bounds: PruneBounds, removed: PrunedRows) {
  for (let i = 0; i < bounds.maxBatches; i++) {
    const rows = await statement(bounds.batchSize);
    for (const [name, n] of Object.entries(rows)) {
      removed[name] = (removed[name] ?? 0) + n;
      if (n > 0) metrics.historyPruned.inc({ table: name }, n);
    }
    if ((rows[table] ?? 0) < bounds.batchSize) return;
  }
}

/**
 * Removes at most `limit` tasks in `state` that finished before `before` and have no pending
 * delivery, oldest first through `tasks_state_created_at_idx` (a task finished before the cutoff
 * was created before it): their events, deliveries, attempts and idempotency keys go by cascade,
 * each found through an index on its task (or delivery). Rows another transaction holds are skipped,
 * never waited for. Counts what the cascade removes from the statement's own snapshot. Unnamed
 * statement: planned with the actual cutoff each time.
 */
async function pruneFinishedTasks(db: Db, state: (typeof TERMINAL)[number], before: Date, limit: number): Promise<PrunedRows> {
  const { rows } = await db.pool.query<PrunedRows>(
    `WITH doomed AS (
       SELECT t.id FROM tasks t
       WHERE t.state = $1::task_state AND t.created_at < $2::timestamp AND t.finished_at < $2::timestamp
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.task_id = t.id AND d.status = 'pending')
       ORDER BY t.created_at LIMIT $3
       FOR UPDATE SKIP LOCKED
     ), gone AS (
       DELETE FROM tasks WHERE id = ANY (ARRAY(SELECT id FROM doomed)) RETURNING id
     ), deliveries AS (
       SELECT d.id FROM webhook_deliveries d WHERE d.task_id IN (SELECT id FROM gone)
     )
     SELECT (SELECT count(*) FROM gone)::int AS tasks,
       (SELECT count(*) FROM task_events e WHERE e.task_id IN (SELECT id FROM gone))::int AS task_events,
       (SELECT count(*) FROM deliveries)::int AS webhook_deliveries,
       (SELECT count(*) FROM webhook_attempts a WHERE a.delivery_id IN (SELECT id FROM deliveries))::int AS webhook_attempts,
       (SELECT count(*) FROM idempotency_keys k WHERE k.task_id IN (SELECT id FROM gone))::int AS idempotency_keys`,
    [state, utc(before), limit],
  );
  return rows[0];
}

/**
 * Removes at most `limit` events of tasks finished before `before`, oldest first by primary key
 * (event ids rise with time). The scan stops at the first event of the earliest task created since
 * the cutoff (one probe of `tasks_state_created_at_idx` per state), so a run reads the old events
 * only, never the history it keeps. Events another transaction holds are skipped.
 */
async function pruneFinishedTaskEvents(db: Db, before: Date, limit: number): Promise<PrunedRows> {
  const { rows } = await db.pool.query<PrunedRows>(
    `WITH bound AS (
       SELECT min(f.id) AS id
       FROM unnest(enum_range(NULL::task_state)) AS s(state)
       CROSS JOIN LATERAL (SELECT k.id FROM tasks k WHERE k.state = s.state AND k.created_at >= $1::timestamp ORDER BY k.created_at LIMIT 1) k
       CROSS JOIN LATERAL (SELECT e.id FROM task_events e WHERE e.task_id = k.id ORDER BY e.seq LIMIT 1) f
     ), doomed AS (
       SELECT e.id FROM task_events e JOIN tasks t ON t.id = e.task_id
       WHERE e.id < coalesce((SELECT id FROM bound), 9223372036854775807) AND e.created_at < $1::timestamp
         AND t.state IN ('succeed', 'failed') AND t.finished_at < $1::timestamp
       ORDER BY e.id LIMIT $2
       FOR UPDATE OF e SKIP LOCKED
     ), gone AS (
       DELETE FROM task_events WHERE id = ANY (ARRAY(SELECT id FROM doomed)) RETURNING id
     )
     SELECT count(*)::int AS task_events FROM gone`,
    [utc(before), limit],
  );
  return rows[0];
}
