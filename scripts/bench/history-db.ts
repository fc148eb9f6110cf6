import { utc } from '../../src/db/client';
import { bench, type BenchKind } from './config';
import { fillOldPages, insertHistory, vacuumAnalyze } from './history-seed';
import { withPg } from '../lib/local-services';
import { servicePipeline, type Pipeline, type PipelineOptions } from './pipelines';

/**
 * The two databases `--history` measures the service on: the benchmark's own, holding only a small
 * baseline of the benchmark tenant's tasks (what the reads need), and the seeded one. Between
 * windows each loses the tasks the measurements made, and is vacuumed and analyzed, so every window
 * starts from the same rows, as a deployment's autovacuum would keep them.
 */
export interface MeasuredDb {
  name: 'empty' | 'history';
  url: string;
  /** The tenant the benchmark runs as, and its api_key. */
  tenantId: string;
  apiKey: string;
  /** Tasks created from this moment on are the measurements' own. */
  mark: Date;
}

const HOUR_MS = 3_600_000;

/** The benchmark's database (migrated, emptied, one tenant: run.ts's `prepareServiceDb`) with `tasks` finished tasks of that tenant. */
export async function prepareEmptyDb(apiKey: string, tasks: number): Promise<MeasuredDb> {
  const url = bench.serviceDbUrl;
  const mark = new Date();
  const tenantId = await withPg(url, async (c) => String((await c.query('SELECT id FROM tenants LIMIT 1')).rows[0].id));
  const span = { tenantIds: [tenantId], from: new Date(mark.getTime() - 30 * 24 * HOUR_MS), to: new Date(mark.getTime() - 7 * HOUR_MS) };
  await insertHistory(url, { ...span, tasks });
  // As on the seeded database: what is left in its pages is what a table filled row by row leaves.
  await vacuumAnalyze(url);
  await fillOldPages(url, span);
  await vacuumAnalyze(url);
  return { name: 'empty', url, tenantId, apiKey, mark };
}

/**
 * Deletes the tasks the measurements made (their events, deliveries, attempts and keys go with
 * them), then vacuums and analyzes, their index entries included: the next window starts as if
 * they had never been.
 */
async function removeNewTasks(db: MeasuredDb): Promise<void> {
  await withPg(db.url, (c) =>
    c.query('DELETE FROM tasks WHERE tenant_id = $1 AND created_at >= $2::timestamp', [db.tenantId, utc(db.mark)]),
  );
  await vacuumAnalyze(db.url, true);
}

/** The service pipeline running on one of the two databases. */
export const pipelineOn = (db: MeasuredDb, o: PipelineOptions): Pipeline =>
  servicePipeline(db.apiKey, o, { name: db.name, dbUrl: db.url, truncate: () => removeNewTasks(db) });

/** Ids and external ids of up to `limit` of the tenant's tasks of a kind, drawn from its whole history. */
export function sampleTasks(db: MeasuredDb, kind: BenchKind, limit: number): Promise<{ ids: string[]; externalIds: string[] }> {
  return withPg(db.url, async (c) => {
    const { rows } = await c.query<{ id: string; external_task_id: string | null }>(
      'SELECT id, external_task_id FROM tasks WHERE tenant_id = $1 AND kind = $2 AND created_at < $3::timestamp ORDER BY random() LIMIT $4',
      [db.tenantId, kind.id, utc(db.mark), limit],
    );
    return { ids: rows.map((r) => r.id), externalIds: rows.flatMap((r) => (r.external_task_id ? [r.external_task_id] : [])) };
  });
}
