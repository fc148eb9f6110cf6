import type { Db } from '../db/client';
import { utc } from '../db/client';

/** Rows one statement removed, by table. */
export type PrunedRows = Record<string, number>;

/**
 * Removes at most `limit` finished deliveries (delivered, gone, dead) of finished tasks whose last
 * change is before `before`, with their attempts (by cascade). Oldest first through the partial
 * index `webhook_deliveries_finished_idx`, which pending deliveries never enter; rows another
 * transaction holds (an attempt being recorded, a redelivery) are skipped, never waited for, and a
 * delivery a redelivery made pending again since this statement began is re-checked and kept.
 * Unnamed statement: planned with the actual cutoff each time, not once for any cutoff.
 */
export async function pruneFinishedDeliveries(db: Db, before: Date, limit: number): Promise<PrunedRows> {
  const { rows } = await db.pool.query<{ webhook_deliveries: number; webhook_attempts: number }>(
    `WITH doomed AS (
       SELECT d.id FROM webhook_deliveries d JOIN tasks t ON t.id = d.task_id
       WHERE d.status <> 'pending' AND d.updated_at < $1::timestamp AND t.state IN ('succeed', 'failed')
       ORDER BY d.updated_at LIMIT $2
       FOR UPDATE OF d SKIP LOCKED
     ), gone AS (
       DELETE FROM webhook_deliveries WHERE id = ANY (ARRAY(SELECT id FROM doomed)) RETURNING id
     )
     SELECT (SELECT count(*) FROM gone)::int AS webhook_deliveries,
       (SELECT count(*) FROM webhook_attempts a WHERE a.delivery_id IN (SELECT id FROM gone))::int AS webhook_attempts`,
    [utc(before), limit],
  );
  return rows[0];
}
