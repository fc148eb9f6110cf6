import { Redis } from 'ioredis';
import { createDb } from '../../src/db/client';
import { databaseName, ensureDatabase, maintenanceUrl, prepareDatabase } from '../../src/db/migrate';
import { createSecretBox } from '../../src/tenants/secret-box';
import { createTenant } from '../../src/tenants/tenants.service';
import { bench } from './config';
import { sleep } from './procs';
import { withPg } from '../lib/local-services';

/** Postgres and Redis housekeeping of the benchmark: its own databases and prefixes only. */

/**
 * Every table a task's life writes. The copies' blobs are among them: `stored_blobs` hangs off no
 * task, so emptying `tasks` leaves it, and kept across windows and runs (the files themselves are
 * deleted with the run) it made each window start from more rows than the one before.
 */
const SERVICE_TABLES = [
  'webhook_attempts',
  'webhook_deliveries',
  'task_events',
  'idempotency_keys',
  'result_files',
  'stored_blobs',
  'tasks',
  'slot_counts',
];

/**
 * A database of the benchmark's made again at the current migrations: whatever an earlier run or an
 * experiment left in it (a dropped index or constraint, a changed setting) is not measured again.
 */
export async function recreateDatabase(url: string): Promise<void> {
  const name = databaseName(url).replace(/"/g, '""');
  await withPg(maintenanceUrl(url), (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
  await prepareDatabase(url);
}

/** A new service database at the current migrations, with one fresh tenant; returns its api_key. */
export async function prepareServiceDb(): Promise<string> {
  await recreateDatabase(bench.serviceDbUrl);
  const db = createDb(bench.serviceDbUrl, 1);
  try {
    return (await createTenant(db, createSecretBox(Buffer.from(bench.secretsKey, 'base64')), 'bench')).api_key;
  } finally {
    await db.$disconnect();
  }
}

/** The bare pipeline's one table: what a minimal tracker would keep (path, body, callback URL, state); recreated, so its shape is this version's. */
export async function prepareBareDb(): Promise<void> {
  await ensureDatabase(bench.bareDbUrl);
  await withPg(bench.bareDbUrl, async (c) => {
    await c.query('DROP TABLE IF EXISTS bare_tasks');
    await c.query(`CREATE TABLE bare_tasks (
      id uuid PRIMARY KEY,
      path text NOT NULL,
      body jsonb NOT NULL,
      callback_url text,
      state text NOT NULL DEFAULT 'queued',
      upstream_id text,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now())`);
  });
}

/**
 * Waits until no connection of the database is busy (bounded): autocannon stops counting at its
 * deadline while the API still finishes the requests in flight, and a TRUNCATE racing them deadlocks.
 */
export const waitIdle = (url: string) =>
  withPg(url, async (c) => {
    const sql =
      "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'";
    const until = Date.now() + 20_000;
    let quietSince = Date.now();
    while (Date.now() < until && Date.now() - quietSince < 500) {
      if (Number((await c.query(sql)).rows[0].n) > 0) quietSince = Date.now();
      await sleep(100);
    }
  });

/** Everything, tenants included (start and end of a run). */
export const clearServiceDb = () => withPg(bench.serviceDbUrl, (c) => c.query(`TRUNCATE tenants, ${SERVICE_TABLES.join(', ')} CASCADE`));
/** Tasks and everything hanging off them; the tenant stays (between phases). */
export const truncateService = () => withPg(bench.serviceDbUrl, (c) => c.query(`TRUNCATE ${SERVICE_TABLES.join(', ')} CASCADE`));
export const truncateBare = () => withPg(bench.bareDbUrl, (c) => c.query('TRUNCATE bare_tasks'));

/** Rows of every service table per task (what the design keeps per task). */
export function serviceRowsPerTask(): Promise<Record<string, number>> {
  return withPg(bench.serviceDbUrl, async (c) => {
    const counts: Record<string, number> = {};
    for (const t of SERVICE_TABLES) counts[t] = Number((await c.query(`SELECT count(*) AS n FROM ${t}`)).rows[0].n);
    return Object.fromEntries(Object.entries(counts).map(([t, n]) => [t, n / Math.max(counts.tasks, 1)]));
  });
}

export interface PgCounters {
  commits: number;
  inserted: number;
  updated: number;
  deleted: number;
}

/** Cumulative counters of one database (pg_stat_database); deltas give per-task database work. */
export async function pgCounters(url: string): Promise<PgCounters> {
  return withPg(maintenanceUrl(url), async (c) => {
    await c.query('SELECT pg_stat_clear_snapshot()');
    const sql = 'SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database WHERE datname = $1';
    const r = (await c.query(sql, [databaseName(url)])).rows[0];
    return {
      commits: Number(r.xact_commit),
      inserted: Number(r.tup_inserted),
      updated: Number(r.tup_updated),
      deleted: Number(r.tup_deleted),
    };
  });
}

export function diffCounters(a: PgCounters, b: PgCounters, per: number): PgCounters {
  const d = (k: keyof PgCounters) => (b[k] - a[k]) / Math.max(per, 1);
  return { commits: d('commits'), inserted: d('inserted'), updated: d('updated'), deleted: d('deleted') };
}

export const redisClient = () => new Redis(bench.redisUrl, { maxRetriesPerRequest: 3 });

async function scanKeys(redis: Redis, prefix: string, each: (keys: string[]) => Promise<unknown>): Promise<number> {
  let cursor = '0';
  let seen = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    seen += keys.length;
    if (keys.length) await each(keys);
  } while (cursor !== '0');
  return seen;
}

/** Deletes every key of a prefix (the benchmark's own: `ktbench:*`, `ktbare:*`). */
export const cleanPrefix = (redis: Redis, prefix: string) => scanKeys(redis, prefix, (keys) => redis.unlink(...keys));
export const countKeys = (redis: Redis, prefix: string) => scanKeys(redis, prefix, async () => undefined);
