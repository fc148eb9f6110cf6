import pg from 'pg';
import type { Db, Tenant } from '../db/client';
import { selectColumns } from '../db/columns';
import type { Logger } from '../logger';

/**
 * Tenants by credential, cached in the API process: every request authenticates, and a database
 * lookup each time would be a large part of a create. Unknown credentials are remembered too,
 * briefly, so repeating one costs no query. Any write to `tenants` (revocation by the CLI, an edit
 * in Prisma Studio, plain SQL, a TRUNCATE) fires a trigger that NOTIFYs `tenant_changes`; every API process
 * LISTENs and drops its whole cache at once. While that connection is down nothing is served from
 * the cache, so a revocation is never missed; entries also expire after `ttlMs` as a backstop.
 */
export interface TenantCache {
  /** The tenant of an API key, by its hash (null: unknown or revoked); a miss costs one query. */
  byApiKeyHash(hash: string): Promise<Tenant | null>;
  byAccessKey(accessKey: string): Promise<Tenant | null>;
  /** What this process already knows of a credential, without a query (undefined: not known). */
  peekApiKeyHash(hash: string): Tenant | null | undefined;
  peekAccessKey(accessKey: string): Tenant | null | undefined;
  close(): Promise<void>;
}

export const TENANT_CHANGES_CHANNEL = 'tenant_changes';
const MAX_ENTRIES = 10_000;
const RECONNECT_MS = 1_000;
/**
 * How long a credential found unknown is refused without asking again. Short, and dropped with the
 * rest of the cache on any change of `tenants`, so a key created meanwhile works at once.
 */
const NEGATIVE_TTL_MS = 10_000;

const TENANT_COLUMNS = selectColumns('tenants');

export function createTenantCache(opts: { db: Db; databaseUrl: string; log: Logger; ttlMs?: number }): TenantCache {
  const ttlMs = opts.ttlMs ?? 60_000;
  const entries = new Map<string, { tenant: Tenant; at: number }>();
  // Unknown credentials apart, so a flood of them never evicts a known tenant.
  const unknown = new Map<string, number>();
  let listener: pg.Client | undefined;
  let listening = false;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  // Bumped by every change: a lookup that raced with one does not store what it read.
  let generation = 0;
  const forget = () => {
    generation++;
    entries.clear();
    unknown.clear();
  };

  const listen = async () => {
    const client = new pg.Client({ connectionString: opts.databaseUrl });
    listener = client;
    const lost = () => {
      if (listener !== client) return;
      listening = false;
      forget();
      listener = undefined;
      void client.end().catch(() => undefined);
      if (!closed) retry = setTimeout(() => void listen(), RECONNECT_MS);
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', forget);
    try {
      await client.connect();
      await client.query(`LISTEN ${TENANT_CHANGES_CHANNEL}`);
      // Whatever changed while not listening is forgotten too.
      forget();
      listening = true;
    } catch (err) {
      opts.log.debug({ err: (err as Error).message }, 'tenant cache: cannot listen for changes; not caching');
      lost();
    }
  };
  void listen();

  const peek = (key: string): Tenant | null | undefined => {
    if (!listening) return undefined;
    const now = Date.now();
    const hit = entries.get(key);
    if (hit && now - hit.at < ttlMs) return hit.tenant;
    const refusedAt = unknown.get(key);
    return refusedAt !== undefined && now - refusedAt < NEGATIVE_TTL_MS ? null : undefined;
  };

  const lookup = async (key: string, where: string, value: string): Promise<Tenant | null> => {
    const known = peek(key);
    if (known !== undefined) return known;
    const readAt = generation;
    const { rows } = await opts.db.sql<Tenant>(`SELECT ${TENANT_COLUMNS} FROM tenants WHERE ${where} = $1`, [value]);
    const tenant = rows[0] && !rows[0].revokedAt ? rows[0] : null;
    if (listening && generation === readAt) {
      if (tenant) {
        if (entries.size >= MAX_ENTRIES) entries.clear();
        entries.set(key, { tenant, at: Date.now() });
      } else {
        if (unknown.size >= MAX_ENTRIES) unknown.clear();
        unknown.set(key, Date.now());
      }
    }
    return tenant;
  };

  return {
    byApiKeyHash: (hash) => lookup(`k:${hash}`, 'api_key_hash', hash),
    byAccessKey: (accessKey) => lookup(`a:${accessKey}`, 'access_key', accessKey),
    peekApiKeyHash: (hash) => peek(`k:${hash}`),
    peekAccessKey: (accessKey) => peek(`a:${accessKey}`),
    async close() {
      closed = true;
      clearTimeout(retry);
      const client = listener;
      listener = undefined;
      listening = false;
      await client?.end().catch(() => undefined);
    },
  };
}
