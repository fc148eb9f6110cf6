import { randomUUID } from 'node:crypto';
import type { Db } from '../db/client';
import type { SlotPool } from '../kinds/kind';
import type { SecretBox } from '../tenants/secret-box';

/**
 * The upstream account pool as stored (`upstream_accounts`). Every statement on an account row is
 * here. Credentials are sealed with the secrets key, bound to the account and column, and never
 * leave this module in clear except to build a client (`openCredentials`).
 */

/** The environment's account (KLING_*, UPSTREAM_CONCURRENCY_*): its credential is never stored. */
export const ENV_ACCOUNT_ID = 'env';

export type SealedAccountColumn = 'api_key' | 'access_key' | 'secret_key';
const sealContext = (accountId: string, column: SealedAccountColumn) => `upstream_accounts.${column}:${accountId}`;

export interface AccountCredentials {
  apiKey?: string;
  accessKey?: string;
  secretKey?: string;
}

export interface NewAccount extends AccountCredentials {
  name: string;
  baseUrl: string;
  slotLimits: Record<SlotPool, number>;
  weight: number;
}

/** Why a pool of an account is out of rotation, from the upstream's business code. */
export const OUT_OF_ROTATION: Readonly<Record<number, string>> = {
  1100: 'account_abnormal',
  1101: 'arrears',
  1102: 'pack_exhausted',
  1304: 'ip_not_allowed',
};

interface PoolOut {
  reason: string;
  code: number;
  since: string;
  probe_at: string;
}

/** An account as `accounts list` and the metrics show it: no credentials. */
export interface AccountView {
  id: string;
  name: string;
  base_url: string;
  enabled: boolean;
  /** `ok`, or why the account (or one of its pools) takes no work: `disabled`, `auth`, `arrears`, ... */
  health: string;
  health_by_pool: Record<string, string>;
  weight: number;
  slots: Record<string, { in_use: number; limit: number; usable: number }>;
  refused_models: string[];
  credential: 'api_key' | 'access_key' | 'environment' | 'none';
  /** Remaining units per resource pack, when the balance has been read. */
  balance: { pack: string; type: string | null; status: string | null; remaining: number | null }[] | null;
  balance_checked_at: string | null;
}

interface AccountRow {
  id: string;
  name: string;
  base_url: string;
  api_key: string | null;
  access_key: string | null;
  secret_key: string | null;
  slot_limits: Record<string, number>;
  weight: number;
  enabled: boolean;
  disabled_reason: string | null;
  pool_health: Record<string, PoolOut>;
  slot_caps: Record<string, { limit: number; until: string }>;
  refused_models: string[];
  breaker_until: Date | null;
  balance: AccountView['balance'];
  balance_checked_at: Date | null;
  packs_exhausted: boolean;
}

export async function addAccount(db: Db, secrets: SecretBox, a: NewAccount): Promise<AccountView> {
  const id = randomUUID();
  const seal = (value: string | undefined, column: SealedAccountColumn) => (value ? secrets.seal(value, sealContext(id, column)) : null);
  await db.sql(
    `INSERT INTO upstream_accounts (id, name, base_url, api_key, access_key, secret_key, slot_limits, weight, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())`,
    [
      id,
      a.name,
      a.baseUrl,
      seal(a.apiKey, 'api_key'),
      seal(a.accessKey, 'access_key'),
      seal(a.secretKey, 'secret_key'),
      a.slotLimits,
      a.weight,
    ],
  );
  return (await listAccounts(db)).find((v) => v.id === id)!;
}

/** The name is taken (another account, or the environment's). */
export async function accountNameTaken(db: Db, name: string): Promise<boolean> {
  const { rows } = await db.sql('SELECT 1 FROM upstream_accounts WHERE name = $1', [name]);
  return rows.length > 0;
}

export async function listAccounts(db: Db): Promise<AccountView[]> {
  const { rows } = await db.sql<AccountRow & { in_use: Record<string, number> | null }>(
    `SELECT a.*, (SELECT jsonb_object_agg(s.pool, s.held) FROM (
        SELECT pool, sum(held)::int AS held FROM slot_counts c WHERE c.account_id = a.id GROUP BY pool) s) AS in_use
     FROM upstream_accounts a ORDER BY a.created_at, a.id`,
  );
  return rows.map((r) => toView(r, r.in_use ?? {}));
}

function toView(r: AccountRow, inUse: Record<string, number>): AccountView {
  const now = Date.now();
  const healthByPool: Record<string, string> = {};
  const slots: AccountView['slots'] = {};
  for (const [pool, limit] of Object.entries(r.slot_limits)) {
    const cap = r.slot_caps[pool];
    const capped = cap && Date.parse(cap.until) > now ? Math.min(limit, cap.limit) : limit;
    slots[pool] = { in_use: inUse[pool] ?? 0, limit, usable: capped };
    healthByPool[pool] = r.pool_health[pool]?.reason ?? 'ok';
  }
  const poolReasons = Object.values(healthByPool).filter((h) => h !== 'ok');
  const health = !r.enabled
    ? (r.disabled_reason ?? 'disabled')
    : (poolReasons[0] ?? (r.breaker_until && r.breaker_until.getTime() > now ? 'unavailable' : 'ok'));
  return {
    id: r.id,
    name: r.name,
    base_url: r.base_url,
    enabled: r.enabled,
    health,
    health_by_pool: healthByPool,
    weight: r.weight,
    slots,
    refused_models: r.refused_models,
    credential: r.id === ENV_ACCOUNT_ID ? 'environment' : r.access_key ? 'access_key' : r.api_key ? 'api_key' : 'none',
    balance: r.balance,
    balance_checked_at: r.balance_checked_at?.toISOString() ?? null,
  };
}

/** An account's base URL (it never holds credentials), or null when there is no such account. */
export async function accountBaseUrl(db: Db, id: string): Promise<string | null> {
  const { rows } = await db.sql<{ base_url: string }>('SELECT base_url FROM upstream_accounts WHERE id = $1', [id]);
  return rows[0]?.base_url ?? null;
}

/** Where an account is and how to sign its requests, opened for building its client; null when unknown. */
export async function accountEndpoint(
  db: Db,
  secrets: SecretBox,
  id: string,
): Promise<({ name: string; baseUrl: string } & AccountCredentials) | null> {
  const { rows } = await db.sql<AccountRow>('SELECT * FROM upstream_accounts WHERE id = $1', [id]);
  const r = rows[0];
  if (!r) return null;
  const open = (sealed: string | null, column: SealedAccountColumn) => (sealed ? secrets.open(sealed, sealContext(id, column)) : undefined);
  return {
    name: r.name,
    baseUrl: r.base_url,
    apiKey: open(r.api_key, 'api_key'),
    accessKey: open(r.access_key, 'access_key'),
    secretKey: open(r.secret_key, 'secret_key'),
  };
}

/** An operator's enable clears what the service had decided too (auth refusal, pools out, breaker): the next task is the probe. */
export async function setAccountEnabled(db: Db, id: string, enabled: boolean): Promise<boolean> {
  const { rowCount } = await db.sql(
    enabled
      ? `UPDATE upstream_accounts SET enabled = true, disabled_reason = NULL, pool_health = '{}', failures_in_row = 0,
           breaker_until = NULL, updated_at = now() WHERE id = $1`
      : `UPDATE upstream_accounts SET enabled = false, disabled_reason = NULL, updated_at = now() WHERE id = $1`,
    [id],
  );
  return (rowCount ?? 0) > 0;
}

export interface AccountSettings {
  slotLimits?: Partial<Record<SlotPool, number>>;
  weight?: number;
}

/** Changes limits and weight. The environment account's limits follow its environment, so they are not set here. */
export async function updateAccount(db: Db, id: string, s: AccountSettings): Promise<'updated' | 'missing' | 'environment'> {
  if (id === ENV_ACCOUNT_ID && s.slotLimits && Object.keys(s.slotLimits).length) return 'environment';
  const { rowCount } = await db.sql(
    `UPDATE upstream_accounts SET slot_limits = slot_limits || $2::jsonb, weight = coalesce($3, weight), updated_at = now() WHERE id = $1`,
    [id, s.slotLimits ?? {}, s.weight ?? null],
  );
  return rowCount ? 'updated' : 'missing';
}

/** Removes an account unless a task in flight holds it (that task is tracked through it to its end). */
export async function removeAccount(db: Db, id: string): Promise<'removed' | 'missing' | 'in_flight'> {
  const { rows } = await db.sql<{ outcome: string }>(
    `WITH busy AS (SELECT 1 FROM tasks WHERE account_id = $1 AND state IN ('queued', 'submitted', 'processing') LIMIT 1),
          gone AS (DELETE FROM upstream_accounts WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM busy) RETURNING 1)
     SELECT CASE WHEN EXISTS (SELECT 1 FROM gone) THEN 'removed'
                 WHEN EXISTS (SELECT 1 FROM busy) THEN 'in_flight' ELSE 'missing' END AS outcome`,
    [id],
  );
  return rows[0].outcome as 'removed' | 'missing' | 'in_flight';
}

/** 1100/1101/1102: the pool is out of rotation, probed again after `probeMs` (a real submission is the probe). */
export async function takePoolOut(db: Db, id: string, pool: string, code: number, probeMs: number): Promise<void> {
  const out = JSON.stringify({ reason: OUT_OF_ROTATION[code] ?? `code_${code}`, code });
  await db.sql(
    `UPDATE upstream_accounts SET pool_health = jsonb_set(pool_health, ARRAY[$2::text],
       $3::jsonb || jsonb_build_object('since', coalesce(pool_health -> $2 -> 'since', to_jsonb(now())),
                                        'probe_at', to_jsonb(now() + $4 * interval '1 millisecond'))),
       updated_at = now()
     WHERE id = $1`,
    [id, pool, out, probeMs],
  );
}

/**
 * The upstream accepted a task in the pool: it is back in rotation and the breaker closes. Pools
 * taken out only because the balance said every pack was used up come back too: the account's
 * packs are not all used up after all. Cheap when nothing was wrong.
 */
export async function markPoolHealthy(db: Db, id: string, pool: string): Promise<void> {
  await db.sql(
    `UPDATE upstream_accounts SET failures_in_row = 0, breaker_until = NULL, updated_at = now(),
       pool_health = (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb) FROM jsonb_each(pool_health) e
                      WHERE e.key <> $2::text AND (e.value ->> 'from') IS DISTINCT FROM 'balance')
     WHERE id = $1 AND (pool_health ? $2::text OR failures_in_row > 0)`,
    [id, pool],
  );
}

/** 1103: the model is not allowed on this account; its tasks go elsewhere. */
export async function refuseModel(db: Db, id: string, model: string): Promise<void> {
  await db.sql(
    `UPDATE upstream_accounts SET refused_models = array_append(refused_models, $2), updated_at = now()
     WHERE id = $1 AND NOT $2 = ANY(refused_models)`,
    [id, model],
  );
}

/** 1000-1002 (and 1003/1004 after a fresh signature): the credential is refused; out until an operator enables it. */
export async function disableForAuth(db: Db, id: string): Promise<void> {
  await db.sql(`UPDATE upstream_accounts SET enabled = false, disabled_reason = 'auth', updated_at = now() WHERE id = $1`, [id]);
}

/** 1303: the upstream holds fewer slots than configured; use at most `limit` in the pool until `forMs` from now. */
export async function capSlots(db: Db, id: string, pool: string, limit: number, forMs: number): Promise<void> {
  await db.sql(
    `UPDATE upstream_accounts SET slot_caps = jsonb_set(slot_caps, ARRAY[$2::text], jsonb_build_object(
       'limit', CASE WHEN (slot_caps -> $2 ->> 'until')::timestamptz > now() THEN least((slot_caps -> $2 ->> 'limit')::int, $3) ELSE $3 END,
       'until', to_jsonb(now() + $4 * interval '1 millisecond'))),
       updated_at = now()
     WHERE id = $1`,
    [id, pool, limit, forMs],
  );
}

/** A 5000-series answer or no answer: after `threshold` in a row the breaker opens for `openMs`. */
export async function countFailure(db: Db, id: string, threshold: number, openMs: number): Promise<void> {
  await db.sql(
    `UPDATE upstream_accounts SET failures_in_row = failures_in_row + 1,
       breaker_until = CASE WHEN failures_in_row + 1 >= $2 THEN now() + $3 * interval '1 millisecond' ELSE breaker_until END
     WHERE id = $1`,
    [id, threshold, openMs],
  );
}

/** Slots one account holds in a pool (from the counter). */
export async function accountSlotsInUse(db: Db, id: string, pool: string): Promise<number> {
  const { rows } = await db.sql<{ held: number }>(
    'SELECT coalesce(sum(held), 0)::int AS held FROM slot_counts WHERE account_id = $1 AND pool = $2',
    [id, pool],
  );
  return rows[0].held;
}

/**
 * The most slots any enabled account has in each pool; `envLimits` stands in for the environment's
 * account while its row is not written yet (its first claim writes it).
 */
export async function largestPoolLimits(db: Db, envLimits: Record<string, number>): Promise<Record<string, number>> {
  const { rows } = await db.sql<{ id: string; enabled: boolean; slot_limits: Record<string, number> }>(
    'SELECT id, enabled, slot_limits FROM upstream_accounts',
  );
  const limits = rows.some((r) => r.id === ENV_ACCOUNT_ID) ? [] : [envLimits];
  for (const r of rows) if (r.enabled) limits.push(r.slot_limits);
  const largest: Record<string, number> = {};
  for (const l of limits) for (const [pool, n] of Object.entries(l)) largest[pool] = Math.max(largest[pool] ?? 0, n);
  return largest;
}

/** Takes the right to read an account's balance now (at most once per `everyMs` across the deployment). */
export async function claimBalanceRead(db: Db, id: string, everyMs: number): Promise<boolean> {
  const { rowCount } = await db.sql(
    `UPDATE upstream_accounts SET balance_checked_at = now()
     WHERE id = $1 AND (balance_checked_at IS NULL OR balance_checked_at <= now() - $2 * interval '1 millisecond')`,
    [id, everyMs],
  );
  return (rowCount ?? 0) > 0;
}

/**
 * Records a balance read. When every pack is used up or expired, each pool of the account still in
 * rotation is taken out as a 1102 would (probed after `probeMs`), so the account is avoided before
 * the upstream has to refuse a task. Kling's figures can be hours old: a probe the upstream accepts
 * puts the pool back whatever the balance says, and a pool already out keeps its probe time.
 */
export async function recordBalance(db: Db, id: string, balance: NonNullable<AccountView['balance']>, probeMs: number): Promise<void> {
  // Exhausted only when every pack says so: a pack still online (or about to be) may take the task.
  const exhausted = balance.length > 0 && balance.every((p) => p.status === 'runOut' || p.status === 'expired' || (p.remaining ?? 1) <= 0);
  await db.sql(
    `UPDATE upstream_accounts SET balance = $2::jsonb, packs_exhausted = $3,
       pool_health = CASE WHEN $3 THEN (
         SELECT coalesce(jsonb_object_agg(l.pool, jsonb_build_object('reason', 'pack_exhausted', 'code', 1102, 'from', 'balance', 'since', to_jsonb(now()),
                  'probe_at', to_jsonb(now() + $4 * interval '1 millisecond'))), '{}'::jsonb)
         FROM jsonb_object_keys(slot_limits) AS l(pool) WHERE NOT pool_health ? l.pool) || pool_health
       ELSE pool_health END
     WHERE id = $1`,
    [id, JSON.stringify(balance), exhausted, probeMs],
  );
}

/** Accounts in rotation whose balance may be read (enabled, with a base URL the service can reach). */
export async function accountIds(db: Db): Promise<string[]> {
  const { rows } = await db.sql<{ id: string }>('SELECT id FROM upstream_accounts WHERE enabled ORDER BY id');
  return rows.map((r) => r.id);
}

/** Accounts with a pool out of rotation or failures counted: the ones whose next success must be written down. */
export async function troubledAccounts(db: Db): Promise<Set<string>> {
  const { rows } = await db.sql<{ id: string }>(`SELECT id FROM upstream_accounts WHERE pool_health <> '{}' OR failures_in_row > 0`);
  return new Set(rows.map((r) => r.id));
}

/** Every enabled account's slots in every pool, together. */
export async function accountSlotTotal(db: Db): Promise<number> {
  const { rows } = await db.sql<{ total: number | null }>(
    `SELECT sum(l.value::int)::int AS total FROM upstream_accounts a, jsonb_each_text(a.slot_limits) l WHERE a.enabled`,
  );
  return rows[0].total ?? 0;
}

/** An account's id from its id or its name (operators type either). */
export async function resolveAccountId(db: Db, idOrName: string): Promise<string | null> {
  const { rows } = await db.sql<{ id: string }>(
    'SELECT id FROM upstream_accounts WHERE id = $1 OR name = $1 ORDER BY id = $1 DESC LIMIT 1',
    [idOrName],
  );
  return rows[0]?.id ?? null;
}

/**
 * Keeps the environment's account in step with a worker's environment at start: with an upstream
 * of its own (KLING_* or the built-in simulator) it is in rotation with the environment's limits,
 * unless an operator disabled it; without one it is out (`not_configured`) and the pool's other
 * accounts take the work.
 */
export async function syncEnvAccount(db: Db, env: { baseUrl: string; slotLimits: Record<string, number> } | null): Promise<void> {
  if (env) {
    await db.sql(
      `INSERT INTO upstream_accounts AS a (id, name, base_url, slot_limits, updated_at) VALUES ($1, $1, $2, $3, now())
       ON CONFLICT (id) DO UPDATE SET base_url = EXCLUDED.base_url, slot_limits = EXCLUDED.slot_limits, updated_at = now(),
         enabled = a.enabled OR a.disabled_reason = 'not_configured',
         disabled_reason = CASE WHEN a.disabled_reason = 'not_configured' THEN NULL ELSE a.disabled_reason END`,
      [ENV_ACCOUNT_ID, env.baseUrl, env.slotLimits],
    );
  } else {
    await db.sql(
      `INSERT INTO upstream_accounts AS a (id, name, base_url, slot_limits, enabled, disabled_reason, updated_at)
       VALUES ($1, $1, '(none)', '{}', false, 'not_configured', now())
       ON CONFLICT (id) DO UPDATE SET enabled = false, disabled_reason = 'not_configured', updated_at = now()`,
      [ENV_ACCOUNT_ID],
    );
  }
}

/** Accounts other than the environment's that an operator added and left enabled. */
export async function hasAddedAccounts(db: Db): Promise<boolean> {
  const { rows } = await db.sql(`SELECT 1 FROM upstream_accounts WHERE id <> $1 AND enabled LIMIT 1`, [ENV_ACCOUNT_ID]);
  return rows.length > 0;
}

/**
 * How many accounts can take work now: enabled, with a pool that has slots and is in rotation.
 * Null when the pool has no account at all yet (a fresh deployment before any worker started).
 */
export async function accountsInRotation(db: Db): Promise<number | null> {
  const { rows } = await db.sql<{ total: number; able: number }>(
    `SELECT count(*)::int AS total, count(*) FILTER (WHERE enabled AND EXISTS (
        SELECT 1 FROM jsonb_each_text(slot_limits) l WHERE l.value::int > 0 AND NOT pool_health ? l.key))::int AS able
     FROM upstream_accounts`,
  );
  return rows[0].total === 0 ? null : rows[0].able;
}
