import { createHash } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../generated/prisma/client';

/**
 * Prisma for everything, plus its own `pg` pool for the few statements every task runs (create,
 * claim, status change, webhook attempt): Prisma's per-call CPU (its WebAssembly query
 * compiler) would be most of their cost. One pool serves both, so a
 * process never holds more than `poolSize` connections.
 */
export type Db = PrismaClient & {
  pool: pg.Pool;
  /** A query on the shared pool as a named prepared statement: parsed and planned once per connection. */
  sql<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
};
export { Prisma } from '../generated/prisma/client';
export type { Task, Tenant, WebhookDelivery } from '../generated/prisma/client';
export { TaskState } from '../generated/prisma/enums';

const TIMESTAMP_OID = 1114;
const INT8_OID = 20;

/**
 * Columns are `timestamp(3)` holding UTC (Prisma's convention) and `bigint`: read them as UTC
 * Dates and BigInts like Prisma does. Prisma's adapter sets its own parsers per query.
 */
const types = {
  getTypeParser(oid: number, format?: string) {
    if (oid === TIMESTAMP_OID) return (v: string) => new Date(`${v.replace(' ', 'T')}Z`);
    if (oid === INT8_OID) return (v: string) => BigInt(v);
    return pg.types.getTypeParser(oid, format as 'text');
  },
} as pg.CustomTypesConfig;

export function createDb(databaseUrl: string, poolSize = 10): Db {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: poolSize,
    // Fail fast while Postgres is down instead of queueing requests behind a dead pool.
    connectionTimeoutMillis: 5_000,
    types,
    // now() and timestamp(3) columns agree whatever the server's default time zone is.
    options: '-c TimeZone=UTC',
  });
  // An idle connection dropped by the server must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  const client = new PrismaClient({ adapter: new PrismaPg(pool) });
  let ended = false;
  const disconnect = client.$disconnect.bind(client);
  return Object.assign(client, {
    pool,
    sql: <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => pool.query<R>({ name: statementName(text), text, values }),
    async $disconnect() {
      await disconnect();
      if (!ended) {
        ended = true;
        await pool.end();
      }
    },
  });
}

/**
 * Statement names by text. The texts are the code's own (a few dozen shapes), never built from
 * input, so the map stays small. Behind PgBouncer in transaction mode this needs its prepared
 * statement support (max_prepared_statements > 0, PgBouncer 1.21+).
 */
const statementNames = new Map<string, string>();
function statementName(text: string): string {
  let name = statementNames.get(text);
  if (!name) {
    name = `kt_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
    statementNames.set(text, name);
  }
  return name;
}

/** Adds values to a statement's parameter list, each call giving the placeholder (`$n`) of the value it added. */
export const placeholderFor =
  (params: unknown[]) =>
  (value: unknown): string =>
    `$${params.push(value)}`;

/** A Date as the UTC literal a `timestamp(3)` column stores (never the process's local time). */
export const utc = (d: Date): string => d.toISOString().replace('T', ' ').replace('Z', '');
