import { Client } from 'pg';
import { utc } from '../../src/db/client';
import { databaseName, maintenanceUrl, migrationNames } from '../../src/db/migrate';
import { newApiKey } from '../../src/tenants/api-key';
import { createSecretBox, sealContext } from '../../src/tenants/secret-box';
import { hashApiKey } from '../../src/tenants/tenants.service';
import { bench } from './config';
import { FILL_EVENTS, FILL_TASKS, INSERT_ATTEMPTS, INSERT_DELIVERIES, INSERT_EVENTS, INSERT_KEYS, INSERT_TASKS } from './history-seed-sql';
import { recreateDatabase } from './infra';
import { withPg } from '../lib/local-services';
import { progress } from './stats';

/**
 * A database holding a history of finished tasks, as a deployment has after months: written in
 * bulk by SQL (history-seed-sql.ts) with the indexes dropped and rebuilt after, then vacuumed and
 * analyzed. A seed is kept between runs (the database's comment records its shape) and written
 * again only when its shape or the migrations changed, or when asked.
 */

/** The tables a task writes rows into, in the order they are filled. */
export const HISTORY_TABLES = ['tasks', 'task_events', 'webhook_deliveries', 'webhook_attempts', 'idempotency_keys'];
/** Changes when the seed's SQL changes what it writes, so that an older seed is written again. */
const SEED_VERSION = 4;
const DAY_MS = 86_400_000;
/** The last seeded task is this much older than the seed, so that even its longest stage limit has passed. */
const NEWEST_AGE_MS = 7 * 3_600_000;

export interface SeedShape {
  tasks: number;
  tenants: number;
  days: number;
}

interface SeedRecord extends SeedShape {
  version: number;
  migrations: string;
  /** Every seeded task was created before this (the measurements' own tasks, after). */
  mark: string;
  seconds: number;
  /** Rows written per table. */
  rows: Record<string, number>;
}

export interface Seeded {
  record: SeedRecord;
  /** The tenant with the largest share, which the benchmark runs as, and its api_key for this run. */
  tenantId: string;
  apiKey: string;
  /** Whether the seed was written by this run (else kept from an earlier one). */
  written: boolean;
}

const SESSION = `SET session_replication_role = replica; SET synchronous_commit = off; SET work_mem = '64MB'; SET jit = off;
  SET maintenance_work_mem = '512MB'; SET TimeZone = 'UTC'`;

// The session's triggers are off (replica): task_counts, which they keep, is counted again after a load.
const RECOUNT = 'SELECT recount_tasks()';

async function connect(url: string): Promise<Client> {
  const c = new Client({ connectionString: url });
  await c.connect();
  await c.query(SESSION);
  return c;
}

/** Runs the statements over `connections` sessions at once (2 CPUs: two). */
async function inParallel(url: string, statements: string[], connections = 2): Promise<void> {
  const queue = [...statements];
  const clients = await Promise.all(Array.from({ length: Math.min(connections, queue.length) }, () => connect(url)));
  try {
    await Promise.all(
      clients.map(async (c) => {
        for (let s = queue.shift(); s !== undefined; s = queue.shift()) await c.query(s);
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

/**
 * Writes `tasks` finished tasks of the tenants, created from `from` to `to`, with their events,
 * deliveries, attempts and recent Idempotency-Keys; returns the rows written per table. The tasks
 * first, then the events beside the deliveries and their attempts (two sessions).
 */
export async function insertHistory(
  url: string,
  o: { tenantIds: string[]; tasks: number; from: Date; to: Date },
): Promise<Record<string, number>> {
  const [a, b] = await Promise.all([connect(url), connect(url)]);
  const rows: Record<string, number> = {};
  const run = async (c: Client, table: string, sql: string, params: unknown[]) => {
    const started = Date.now();
    rows[table] = (await c.query(sql, params)).rowCount ?? 0;
    progress(`history: ${rows[table]} rows into ${table} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  };
  try {
    await run(a, 'tasks', INSERT_TASKS, [o.tenantIds, o.tasks, utc(o.from), utc(o.to), 0.6, 0.7]);
    await a.query(RECOUNT);
    const since = [utc(o.from), o.tenantIds];
    await Promise.all([
      run(a, 'task_events', INSERT_EVENTS, since),
      (async () => {
        await run(b, 'webhook_deliveries', INSERT_DELIVERIES, since);
        await run(b, 'webhook_attempts', INSERT_ATTEMPTS, since);
        // Keys are forgotten after IDEMPOTENCY_TTL_HOURS (24 by default): only the last day's tasks have one.
        await run(b, 'idempotency_keys', INSERT_KEYS, [utc(new Date(o.to.getTime() - DAY_MS)), 0.3, o.tenantIds]);
      })(),
    ]);
  } finally {
    await Promise.all([a.end(), b.end()]);
  }
  return rows;
}

interface Definitions {
  /** Primary keys and unique constraints, then plain indexes: rebuilt first. */
  indexes: string[];
  /** Foreign keys: added back once the keys they reference exist. */
  foreignKeys: string[];
}

/**
 * Drops the indexes and constraints of the history tables, and the foreign keys of other tables
 * that refer to them (result_files), and returns the statements that make them again.
 */
async function dropIndexes(url: string): Promise<Definitions> {
  return withPg(url, async (c) => {
    const tables = HISTORY_TABLES.map((t) => `'${t}'::regclass`).join(', ');
    const { rows: constraints } = await c.query<{ tbl: string; name: string; def: string; type: string }>(
      `SELECT conrelid::regclass::text AS tbl, conname AS name, pg_get_constraintdef(oid) AS def, contype AS type
       FROM pg_constraint
       WHERE (conrelid IN (${tables}) AND contype IN ('p', 'u', 'f')) OR (confrelid IN (${tables}) AND contype = 'f')`,
    );
    const { rows: indexes } = await c.query<{ name: string; def: string }>(
      `SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def FROM pg_index i
       WHERE indrelid IN (${tables})
         AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u'))`,
    );
    const add = (k: (typeof constraints)[number]) => `ALTER TABLE ${k.tbl} ADD CONSTRAINT "${k.name}" ${k.def}`;
    const foreign = constraints.filter((k) => k.type === 'f');
    const keys = constraints.filter((k) => k.type !== 'f');
    for (const k of [...foreign, ...keys]) await c.query(`ALTER TABLE ${k.tbl} DROP CONSTRAINT "${k.name}"`);
    for (const i of indexes) await c.query(`DROP INDEX ${i.name}`);
    return { indexes: [...keys.map(add), ...indexes.map((i) => i.def)], foreignKeys: foreign.map(add) };
  });
}

const describeSeed = async (url: string): Promise<SeedRecord | null> =>
  withPg(maintenanceUrl(url), async (c) => {
    const { rows } = await c.query("SELECT shobj_description(oid, 'pg_database') AS d FROM pg_database WHERE datname = $1", [
      databaseName(url),
    ]);
    try {
      return rows[0]?.d ? (JSON.parse(rows[0].d) as SeedRecord) : null;
    } catch {
      return null;
    }
  });

const sameSeed = (r: SeedRecord | null, shape: SeedShape): r is SeedRecord =>
  !!r &&
  r.version === SEED_VERSION &&
  r.migrations === migrationNames().at(-1) &&
  r.tasks === shape.tasks &&
  r.tenants === shape.tenants &&
  r.days === shape.days;

/** A fresh database at the current migrations, with the tenants named history-0 .. history-(n-1). */
async function freshHistoryDatabase(url: string, tenants: number): Promise<string[]> {
  await recreateDatabase(url);
  return withPg(url, async (c) => {
    // Credentials are set by rekeyTenants, at every run.
    const { rows } = await c.query<{ id: string }>(
      `INSERT INTO tenants (id, name, api_key_hash, api_key_prefix, access_key, secret_key, webhook_secret, created_at)
       SELECT gen_random_uuid()::text, 'history-' || k, 'unset-' || k, 'unset', 'unset-' || k, 'unset', 'unset', now() - interval '1 year'
       FROM generate_series(0, $1::int - 1) k ORDER BY k RETURNING id`,
      [tenants],
    );
    return rows.map((r) => r.id);
  });
}

/** Gives every seeded tenant credentials sealed under this run's secrets key; returns the first one's api_key. */
async function rekeyTenants(url: string): Promise<{ tenantId: string; apiKey: string }> {
  const box = createSecretBox(Buffer.from(bench.secretsKey, 'base64'));
  return withPg(url, async (c) => {
    const { rows } = await c.query<{ id: string }>(
      "SELECT id FROM tenants WHERE name LIKE 'history-%' ORDER BY substring(name FROM 9)::int",
    );
    let first = { tenantId: '', apiKey: '' };
    for (const { id } of rows) {
      const apiKey = newApiKey();
      await c.query(
        `UPDATE tenants SET api_key_hash = $2, api_key_prefix = $3, access_key = $4, secret_key = $5, webhook_secret = $6,
           webhook_secret_previous = NULL, revoked_at = NULL WHERE id = $1`,
        [
          id,
          hashApiKey(apiKey),
          apiKey.slice(0, 7),
          `ak_${id.replace(/-/g, '').slice(0, 24)}`,
          box.seal(newApiKey(), sealContext(id, 'secret_key')),
          box.seal(`whsec_${Buffer.from(newApiKey()).toString('base64')}`, sealContext(id, 'webhook_secret')),
        ],
      );
      if (!first.tenantId) first = { tenantId: id, apiKey };
    }
    return first;
  });
}

/** Tasks per batch of the filling: a quarter of the pages of tasks, within these bounds. */
const FILL_BATCH = { min: 100, max: 20_000 };
/** A bound on the filling, far above what a seed needs. */
const FILL_MAX_BATCHES = 200;

/**
 * Fills the room a bulk load leaves at the end of nearly every page of tasks and task_events, and
 * returns the tasks written for it. A page filled by a bulk load keeps what is left after its last
 * row: less than one of its rows, but the rows of a task just created are smaller than those of a
 * finished one (no result, no answers of the upstream), so a create finds room in almost every old
 * page. Postgres puts a new row into any page its free-space map says has room for it: each create
 * then writes into a page of months ago (a read, and a full-page image in the WAL after every
 * checkpoint), one page per row. A table filled row by row over months has no such room left: the
 * rows that came after each page's last one used it, as they were written. So tasks canceled while
 * queued (2% of the seed's tasks are such), each as small as a task row can be, go into that room,
 * in batches, until every row of a batch, down to a create's first event, goes into a new page.
 */
export async function fillOldPages(url: string, o: { tenantIds: string[]; from: Date; to: Date }): Promise<number> {
  const c = await connect(url);
  try {
    const { rows: size } = await c.query<{ tasks: string; events: string }>(
      `SELECT pg_relation_size('tasks') / current_setting('block_size')::int AS tasks,
              pg_relation_size('task_events') / current_setting('block_size')::int AS events`,
    );
    const old = { tasks: Number(size[0].tasks), events: Number(size[0].events) };
    const perBatch = Math.min(FILL_BATCH.max, Math.max(FILL_BATCH.min, Math.ceil(old.tasks / 4)));
    await c.query('CREATE TEMP TABLE fill_batch (id text, created_at timestamp, finished_at timestamp, page bigint)');
    const inOld = async (sql: string, params: unknown[]) => (await c.query<{ in_old: number }>(sql, params)).rows[0].in_old;
    let written = 0;
    for (let batch = 0; batch < FILL_MAX_BATCHES; batch++) {
      await c.query('TRUNCATE fill_batch');
      await c.query(FILL_TASKS, [o.tenantIds, batch * perBatch + 1, (batch + 1) * perBatch, utc(o.from), utc(o.to)]);
      written += perBatch;
      const tasksInOld = await inOld('SELECT count(*) FILTER (WHERE page < $1)::int AS in_old FROM fill_batch', [old.tasks]);
      await c.query(FILL_EVENTS, [2, old.events]);
      const firstEventsInOld = await inOld(FILL_EVENTS, [1, old.events]);
      if (tasksInOld === 0 && firstEventsInOld === 0) break;
    }
    await c.query(RECOUNT);
    return written;
  } finally {
    await c.end();
  }
}

/**
 * Vacuums (the visibility map, as a table long in service has it) and analyzes the history tables.
 * With `indexCleanup` the indexes lose their entries of deleted rows whatever their number: a
 * vacuum skips that when rows on fewer than 2% of a table's pages died (PostgreSQL 14+), which is
 * what deleting a window's tasks from two million is, and their entries would then stay at the
 * newest end of the tenant's range, where list page 1 reads.
 */
export const vacuumAnalyze = (url: string, indexCleanup = false) =>
  inParallel(
    url,
    HISTORY_TABLES.map((t) => `VACUUM (ANALYZE${indexCleanup ? ', INDEX_CLEANUP ON' : ''}) ${t}`),
  );

/**
 * The seeded database at `url`: kept when an earlier run wrote one of this shape at the current
 * migrations (unless `reseed`), otherwise written now. Its tenants get credentials for this run.
 */
export async function seedHistoryDb(url: string, shape: SeedShape, reseed: boolean): Promise<Seeded> {
  const kept = await describeSeed(url);
  if (!reseed && sameSeed(kept, shape)) {
    progress(`history: keeping the seed of ${kept.tasks} tasks written on ${kept.mark} (BENCH_HISTORY_RESEED=1 writes it again)`);
    return { record: kept, ...(await rekeyTenants(url)), written: false };
  }
  const started = Date.now();
  progress(`history: writing ${shape.tasks} finished tasks of ${shape.tenants} tenants over ${shape.days} days into ${databaseName(url)}`);
  const tenantIds = await freshHistoryDatabase(url, shape.tenants);
  const definitions = await dropIndexes(url);
  const to = new Date(started - NEWEST_AGE_MS);
  const rows = await insertHistory(url, { tenantIds, tasks: shape.tasks, from: new Date(to.getTime() - shape.days * DAY_MS), to });
  let step = Date.now();
  await inParallel(url, definitions.indexes);
  progress(`history: ${definitions.indexes.length} indexes built in ${((Date.now() - step) / 1000).toFixed(0)} s`);
  step = Date.now();
  await inParallel(url, definitions.foreignKeys);
  progress(`history: ${definitions.foreignKeys.length} foreign keys checked in ${((Date.now() - step) / 1000).toFixed(0)} s`);
  step = Date.now();
  await vacuumAnalyze(url);
  progress(`history: vacuumed and analyzed in ${((Date.now() - step) / 1000).toFixed(0)} s`);
  step = Date.now();
  rows['tasks filling old pages'] = await fillOldPages(url, { tenantIds, from: new Date(to.getTime() - shape.days * DAY_MS), to });
  await vacuumAnalyze(url);
  progress(
    `history: ${rows['tasks filling old pages']} tasks canceled while queued filled the room left in old pages, in ${((Date.now() - step) / 1000).toFixed(0)} s`,
  );
  const record: SeedRecord = {
    ...shape,
    version: SEED_VERSION,
    migrations: migrationNames().at(-1) ?? '',
    mark: new Date(started).toISOString(),
    seconds: Math.round((Date.now() - started) / 1000),
    rows,
  };
  // Written last: a seed cut short has no record, and the next run writes it again.
  await withPg(maintenanceUrl(url), (c) =>
    c.query(`COMMENT ON DATABASE "${databaseName(url).replace(/"/g, '""')}" IS '${JSON.stringify(record).replace(/'/g, "''")}'`),
  );
  progress(`history: seeded in ${record.seconds} s`);
  return { record, ...(await rekeyTenants(url)), written: true };
}
