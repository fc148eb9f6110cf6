import type { Db } from './client';

/** The tables every task writes, whose statistics decide how the hot-path statements are planned. */
export const ANALYZED_TABLES = ['tasks', 'task_events', 'webhook_deliveries', 'webhook_attempts', 'idempotency_keys'] as const;

/**
 * Does for the service's own tables the ANALYZE that autovacuum would do, where autovacuum does not
 * run (the server's `autovacuum = off`, or a table's
 * `autovacuum_enabled = false`), with autovacuum's own threshold: rows changed since the last
 * analyze above `autovacuum_analyze_threshold + autovacuum_analyze_scale_factor * rows`. Where
 * autovacuum runs, this does nothing.
 *
 * Why: the hot-path statements are prepared once per connection, and Postgres keeps the plan it
 * chose after a few runs until a table's statistics change. Chosen on tables that were never
 * analyzed (a fresh database, or emptied), the waiters check at each task's end and each slot
 * claim's look for older waiting tasks read every queued task by state instead of through the
 * partial index `tasks_waiting_for_slots_idx`. An analyze
 * invalidates them, and the next run plans with real statistics.
 *
 * At most once per `autovacuum_naptime` (a minute) a table, as autovacuum, which visits a database
 * that often, would: a table whose rows keep changing passes the threshold every few seconds under
 * load, and its analyze (a third of a second for `tasks` with tens of thousands of rows) then took a
 * few percent of the machine for statistics that hardly moved. Sooner only for a table never analyzed
 * or emptied since, or whose rows have more than doubled or halved: the statistics the plans were
 * made on are then wrong. `minIntervalS` replaces the naptime (tests).
 *
 * One table per statement (an ANALYZE locks only that table, and waits for nobody but a TRUNCATE or
 * DDL of it). Returns the tables analyzed. A table this role may not analyze is skipped by Postgres
 * with a warning, not an error.
 */
export async function analyzeStaleTables(db: Db, opts: { minIntervalS?: number } = {}): Promise<string[]> {
  const { rows } = await db.sql<{ table: string }>(
    `SELECT c.relname AS table
     FROM pg_class c
     JOIN pg_stat_user_tables s ON s.relid = c.oid
     WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY($1::text[])
       AND (current_setting('autovacuum')::boolean = false
            OR EXISTS (SELECT 1 FROM unnest(c.reloptions) o WHERE o ~* '^autovacuum_enabled=(false|off|no|0|f)$'))
       AND s.n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8
             + current_setting('autovacuum_analyze_scale_factor')::float8 * greatest(c.reltuples, 0)
       AND (c.reltuples < 0
            OR coalesce(greatest(s.last_analyze, s.last_autoanalyze), '-infinity') <
                 now() - coalesce($2::float8, extract(epoch FROM current_setting('autovacuum_naptime')::interval)) * interval '1 second'
            OR s.n_live_tup > 2 * c.reltuples + current_setting('autovacuum_analyze_threshold')::float8
            OR s.n_live_tup < c.reltuples / 2)`,
    [ANALYZED_TABLES, opts.minIntervalS ?? null],
  );
  // The names come from ANALYZED_TABLES (matched above), never from input.
  for (const { table } of rows) await db.pool.query(`ANALYZE "${table}"`);
  return rows.map((r) => r.table);
}
