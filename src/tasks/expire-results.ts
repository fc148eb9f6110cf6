import type { Db } from '../db/client';
import { utc } from '../db/client';
import { metrics } from '../observability/metrics';
import type { BlobStore } from '../results/blob-store';

/** Tasks whose copies leave per statement, and statements per run: a steady trickle, as finished history leaves. */
const TASKS_PER_BATCH = 200;
const BATCHES_PER_RUN = 20;
/** A blob no copy refers to is deleted once nobody has stored it for this long (a store in progress bumps it first). */
export const BLOB_GRACE_MS = 3_600_000;

/**
 * Retention of durable copies: the copies of tasks past their `results_expire_at` are deleted (their
 * `result_files` rows, in batches), the tasks then show `files.state = expired` with the time; then
 * objects no copy refers to any more (expired, or their task removed by TASK_RETENTION_DAYS) are
 * deleted from the store. Identical content shared by another task stays while that task keeps it.
 */
export async function expireResults(db: Db, blobs: BlobStore, now = new Date()): Promise<{ tasks: number; blobs: number }> {
  let tasks = 0;
  for (let i = 0; i < BATCHES_PER_RUN; i++) {
    const n = await expireBatch(db, now);
    tasks += n;
    if (n < TASKS_PER_BATCH) break;
  }
  let removed = 0;
  for (let i = 0; i < BATCHES_PER_RUN; i++) {
    const n = await removeUnreferencedBlobs(db, blobs, new Date(now.getTime() - BLOB_GRACE_MS));
    removed += n;
    if (n < TASKS_PER_BATCH) break;
  }
  return { tasks, blobs: removed };
}

async function expireBatch(db: Db, now: Date): Promise<number> {
  const { rows } = await db.sql<{ files: string }>(
    `WITH t AS (
       SELECT id FROM tasks WHERE id IN (SELECT DISTINCT task_id FROM result_files WHERE expires_at <= $1::timestamp LIMIT ${TASKS_PER_BATCH})
       FOR UPDATE SKIP LOCKED),
     f AS (DELETE FROM result_files WHERE task_id IN (SELECT id FROM t) RETURNING 1),
     u AS (UPDATE tasks SET files_state = 'expired', files = NULL, files_expired_at = $1::timestamp WHERE id IN (SELECT id FROM t) RETURNING 1)
     SELECT (SELECT count(*) FROM f)::text AS files, (SELECT count(*) FROM u)::text AS tasks`,
    [utc(now)],
  );
  const files = Number(rows[0].files);
  metrics.resultFilesExpired.inc({ what: 'rows' }, files);
  return Number((rows[0] as unknown as { tasks: string }).tasks);
}

/**
 * Deletes blobs that no copy refers to and nobody stored within the grace period: the object first,
 * then the row, in one transaction that holds the row locked; a store of the same content waits on
 * that lock and then writes the object again.
 */
async function removeUnreferencedBlobs(db: Db, blobs: BlobStore, storedBefore: Date): Promise<number> {
  return db.$transaction(
    async (tx) => {
      const rows = await tx.$queryRawUnsafe<{ sha256: string; storage_key: string }[]>(
        `SELECT sha256, storage_key FROM stored_blobs b WHERE last_stored_at < $1::timestamp
         AND NOT EXISTS (SELECT 1 FROM result_files f WHERE f.sha256 = b.sha256)
       ORDER BY last_stored_at LIMIT ${TASKS_PER_BATCH} FOR UPDATE SKIP LOCKED`,
        utc(storedBefore),
      );
      if (!rows.length) return 0;
      await blobs.remove(rows.map((r) => r.storage_key));
      await tx.$executeRawUnsafe(
        'DELETE FROM stored_blobs WHERE sha256 = ANY($1::text[])',
        rows.map((r) => r.sha256),
      );
      metrics.resultFilesExpired.inc({ what: 'objects' }, rows.length);
      return rows.length;
    },
    { timeout: 60_000 },
  );
}
