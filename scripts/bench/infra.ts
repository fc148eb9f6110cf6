import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { createDb } from '../../src/db/client';
import { databaseName, ensureDatabase, maintenanceUrl, prepareDatabase } from '../../src/db/migrate';
import { createSecretBox } from '../../src/tenants/secret-box';
import { createTenant } from '../../src/tenants/tenants.service';
import { bench } from './config';
import { trackPids, type CpuTracker } from './cpu';

/** Postgres and Redis housekeeping of the benchmark: its own databases and prefixes only. */

const SERVICE_TABLES = ['webhook_attempts', 'webhook_deliveries', 'task_events', 'idempotency_keys', 'tasks', 'slot_counts'];

async function withPg<T>(url: string, work: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Migrated service database, emptied, with one fresh tenant; returns its api_key. */
export async function prepareServiceDb(url = bench.serviceDbUrl): Promise<string> {
  await prepareDatabase(url);
  await clearServiceDb(url);
  const db = createDb(url, 1);
  try {
    return (await createTenant(db, createSecretBox(Buffer.from(bench.secretsKey, 'base64')), 'bench')).api_key;
  } finally {
    await db.$disconnect();
  }
}

/** The bare pipeline's one table: what a minimal tracker would keep (body, callback URL, state). */
export async function prepareBareDb(url = bench.bareDbUrl): Promise<void> {
  await ensureDatabase(url);
  await withPg(url, async (c) => {
    await c.query(`CREATE TABLE IF NOT EXISTS bare_tasks (
      id uuid PRIMARY KEY,
      body jsonb NOT NULL,
      callback_url text,
      state text NOT NULL DEFAULT 'queued',
      upstream_id text,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now())`);
    await c.query('TRUNCATE bare_tasks');
  });
}

/**
 * Waits until no connection of the database is busy (bounded): autocannon stops counting at its
 * deadline while the API still finishes the requests in flight, and a TRUNCATE racing them deadlocks.
 */
export async function waitIdle(url: string, timeoutMs = 20_000): Promise<void> {
  await withPg(url, async (c) => {
    const until = Date.now() + timeoutMs;
    let quietSince = Date.now();
    while (Date.now() < until) {
      const busy = Number(
        (
          await c.query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state NOT IN ('idle')",
          )
        ).rows[0].n,
      );
      if (busy > 0) quietSince = Date.now();
      else if (Date.now() - quietSince >= 500) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  });
}

/** Everything, tenants included (start and end of a run). */
export const clearServiceDb = (url = bench.serviceDbUrl) =>
  withPg(url, (c) => c.query(`TRUNCATE tenants, ${SERVICE_TABLES.join(', ')} CASCADE`));
/** Tasks and everything hanging off them; the tenant stays (between phases). */
export const truncateService = (url = bench.serviceDbUrl) => withPg(url, (c) => c.query(`TRUNCATE ${SERVICE_TABLES.join(', ')} CASCADE`));
export const truncateBare = (url = bench.bareDbUrl) => withPg(url, (c) => c.query('TRUNCATE bare_tasks'));

/** Rows of every service table (to see what the design keeps per task). */
export function serviceRowCounts(url = bench.serviceDbUrl): Promise<Record<string, number>> {
  return withPg(url, async (c) => {
    const counts: Record<string, number> = {};
    for (const t of SERVICE_TABLES) counts[t] = Number((await c.query(`SELECT count(*) AS n FROM ${t}`)).rows[0].n);
    return counts;
  });
}

/** Tasks by state, and the sum of submit attempts (one upstream call each when nothing failed). */
export function serviceTaskSummary(url = bench.serviceDbUrl): Promise<{ byState: Record<string, number>; submitAttempts: number }> {
  return withPg(url, async (c) => {
    const rows = (await c.query('SELECT state, count(*) AS n, sum(submit_attempts) AS a FROM tasks GROUP BY state')).rows;
    const byState = Object.fromEntries(rows.map((r) => [r.state as string, Number(r.n)]));
    return { byState, submitAttempts: rows.reduce((s, r) => s + Number(r.a), 0) };
  });
}

export interface PgCounters {
  commits: number;
  inserted: number;
  updated: number;
  deleted: number;
  returned: number;
}

/** Cumulative counters of one database (pg_stat_database); deltas give per-task database work. */
export async function pgCounters(url: string): Promise<PgCounters> {
  const name = databaseName(url);
  return withPg(maintenanceUrl(url), async (c) => {
    await c.query('SELECT pg_stat_clear_snapshot()');
    const r = (
      await c.query('SELECT xact_commit, tup_inserted, tup_updated, tup_deleted, tup_returned FROM pg_stat_database WHERE datname = $1', [
        name,
      ])
    ).rows[0];
    return {
      commits: Number(r.xact_commit),
      inserted: Number(r.tup_inserted),
      updated: Number(r.tup_updated),
      deleted: Number(r.tup_deleted),
      returned: Number(r.tup_returned),
    };
  });
}

export function diffCounters(a: PgCounters, b: PgCounters, per: number): PgCounters {
  const d = (k: keyof PgCounters) => (b[k] - a[k]) / Math.max(per, 1);
  return { commits: d('commits'), inserted: d('inserted'), updated: d('updated'), deleted: d('deleted'), returned: d('returned') };
}

export const redisClient = (url = bench.redisUrl) => new Redis(url, { maxRetriesPerRequest: 3 });

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

export interface SlowEntry {
  micros: number;
  command: string;
}

const isDriverCommand = (args: string[]) =>
  /^(scan|unlink)$/i.test(args[0]) || (/^eval$/i.test(args[0]) && String(args[1]).includes('Get jobs'));

/** Redis SLOWLOG entries since `sinceSec` that touch our prefix (the server is shared). */
export async function slowlog(redis: Redis, prefix: string, sinceSec: number): Promise<SlowEntry[]> {
  const entries = (await redis.call('SLOWLOG', 'GET', '128')) as [number, number, number, string[]][];
  return (
    entries
      // SCAN, UNLINK and BullMQ's getJobs script (sent as EVAL) are the driver's own reads
      // (cleanPrefix, countKeys, submitOutcomes), not the pipelines' work.
      .filter(([, at, , args]) => at >= sinceSec && !isDriverCommand(args) && args.some((a) => String(a).includes(`${prefix}:`)))
      .map(([, , micros, args]) => ({ micros, command: `${args[0]} ${args.find((a) => String(a).includes(`${prefix}:`))}`.slice(0, 120) }))
  );
}

/**
 * What the service's submit jobs ended with, over the completed jobs BullMQ still keeps (the last
 * 1000 at most): "submitted", or "waiting-for-slots" when the job gave up and left its task to be
 * woken later.
 */
export async function submitOutcomes(redis: Redis, prefix: string): Promise<Record<string, number>> {
  const queue = new Queue('task.submit', { connection: redis, prefix });
  try {
    const outcomes: Record<string, number> = {};
    for (const job of await queue.getJobs(['completed'], 0, 999)) {
      const key = String(job.returnvalue);
      outcomes[key] = (outcomes[key] ?? 0) + 1;
    }
    return outcomes;
  } finally {
    await queue.close();
  }
}

/** CPU of the Postgres backends serving one database (not the test suite's, on the same server). */
export async function trackBackendsCpu(url: string): Promise<CpuTracker> {
  const client = new Client({ connectionString: maintenanceUrl(url) });
  await client.connect();
  const name = databaseName(url);
  const listPids = async () =>
    (await client.query('SELECT pid FROM pg_stat_activity WHERE datname = $1', [name])).rows.map((r) => Number(r.pid));
  const tracker = trackPids(listPids);
  return {
    totalMs: () => tracker.totalMs(),
    stop() {
      tracker.stop();
      void client.end();
    },
  };
}
