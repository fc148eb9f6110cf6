import { utc } from '../db/client';
import { storeTaskResults, type StoreDeps, type StoreOutcome } from './store-results';

export interface BackfillOptions {
  /** Only tasks that finished at or after this. */
  since?: Date;
  /** Tasks copied at once (STORAGE_CONCURRENCY). */
  concurrency: number;
  /** Called after each task (progress lines). */
  onTask?: (taskId: string, outcome: StoreOutcome | 'failed', err?: Error) => void;
}

export interface BackfillReport {
  stored: number;
  failed: number;
}

const PAGE = 100;

/**
 * Copies the outputs of tasks that succeeded without copies: before copies existed, with
 * RESULT_URLS=upstream, or with the upstream's URLs after copying failed. Walks tasks in id order
 * (time-ordered) and picks only those still without copies, so a run that stops is resumed by
 * running it again. A task whose copies are past its retention is left alone.
 */
export async function backfillResults(deps: StoreDeps, opts: BackfillOptions): Promise<BackfillReport> {
  const report: BackfillReport = { stored: 0, failed: 0 };
  let after = '';
  for (;;) {
    const { rows } = await deps.store.db.sql<{ id: string }>(
      `SELECT id FROM tasks WHERE state = 'succeed' AND (files_state IS NULL OR files_state = 'upstream') AND result IS NOT NULL
         AND id > $1 AND ($2::timestamp IS NULL OR finished_at >= $2::timestamp)
         AND (results_expire_at IS NULL OR results_expire_at > now())
       ORDER BY id LIMIT ${PAGE}`,
      [after, opts.since ? utc(opts.since) : null],
    );
    if (!rows.length) return report;
    after = rows[rows.length - 1].id;
    const queue = rows.map((r) => r.id);
    const worker = async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        try {
          const outcome = await storeTaskResults(deps, id);
          if (outcome === 'stored' || outcome === 'replaced') report.stored++;
          opts.onTask?.(id, outcome);
        } catch (err) {
          report.failed++;
          opts.onTask?.(id, 'failed', err as Error);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, worker));
  }
}
