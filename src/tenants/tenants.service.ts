import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Db } from '../db/client';
import { newApiKey } from './api-key';
import { createSecretBox, isLegacySealed, openLegacy, sealContext, type SealedColumn, type SecretBox } from './secret-box';

export interface NewTenantCredentials {
  id: string;
  name: string;
  api_key: string;
  access_key: string;
  secret_key: string;
  webhook_secret: string;
}

export interface TenantListing {
  id: string;
  name: string;
  api_key_prefix: string;
  access_key: string;
  created_at: string;
  revoked_at: string | null;
}

export const hashApiKey = (apiKey: string) => createHash('sha256').update(apiKey).digest('hex');

/** Standard Webhooks secrets are `whsec_` + base64 of 24 to 64 random bytes. */
const newWebhookSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

/** Creates a tenant; the credentials are returned once and only the api_key's hash is kept. */
export async function createTenant(
  db: Db,
  secrets: SecretBox,
  name: string,
  /** Days the tenant's result copies are kept; absent: forever. */
  opts: { resultRetentionDays?: number } = {},
): Promise<NewTenantCredentials> {
  const apiKey = newApiKey();
  const creds = {
    id: randomUUID(),
    name,
    api_key: apiKey,
    access_key: `ak_${randomBytes(12).toString('hex')}`,
    secret_key: newSecretKey(),
    webhook_secret: newWebhookSecret(),
  };
  await db.tenant.create({
    data: {
      id: creds.id,
      name,
      apiKeyHash: hashApiKey(apiKey),
      apiKeyPrefix: apiKey.slice(0, 7),
      accessKey: creds.access_key,
      secretKey: secrets.seal(creds.secret_key, sealContext(creds.id, 'secret_key')),
      webhookSecret: secrets.seal(creds.webhook_secret, sealContext(creds.id, 'webhook_secret')),
      resultRetentionDays: opts.resultRetentionDays ?? null,
    },
  });
  return creds;
}

const newSecretKey = () => randomBytes(32).toString('base64url');

export async function listTenants(db: Db): Promise<TenantListing[]> {
  const rows = await db.tenant.findMany({ orderBy: { createdAt: 'asc' } });
  return rows.map((t) => ({
    id: t.id,
    name: t.name,
    api_key_prefix: t.apiKeyPrefix,
    access_key: t.accessKey,
    created_at: t.createdAt.toISOString(),
    revoked_at: t.revokedAt?.toISOString() ?? null,
  }));
}

/** Revokes a key; true if it existed and was active. */
export async function revokeTenant(db: Db, id: string): Promise<boolean> {
  const r = await db.tenant.updateMany({ where: { id, revokedAt: null }, data: { revokedAt: new Date() } });
  return r.count === 1;
}

/**
 * Starts a webhook secret rotation: a new secret signs from now on, and the current one keeps
 * signing too (two signatures per webhook) until `finishWebhookRotation`. Null for an unknown key.
 */
export async function rotateWebhookSecret(db: Db, secrets: SecretBox, id: string): Promise<{ id: string; webhook_secret: string } | null> {
  const tenant = await db.tenant.findUnique({ where: { id } });
  if (!tenant || tenant.revokedAt) return null;
  const next = newWebhookSecret();
  // Sealed values are bound to their column: the current secret is sealed again as the previous one.
  const current = secrets.open(tenant.webhookSecret, sealContext(id, 'webhook_secret'));
  const moved = await db.tenant.updateMany({
    where: { id, webhookSecret: tenant.webhookSecret },
    data: {
      webhookSecret: secrets.seal(next, sealContext(id, 'webhook_secret')),
      webhookSecretPrevious: secrets.seal(current, sealContext(id, 'webhook_secret_previous')),
    },
  });
  if (moved.count !== 1) throw new Error('the webhook secret changed meanwhile; run the rotation again');
  return { id, webhook_secret: next };
}

/**
 * Issues a new secret_key (the AK/SK pair's secret) for an active key: JWTs signed with the old one
 * are refused from now on, in every API process (their caches drop on any change of `tenants`).
 */
export async function rotateSecretKey(
  db: Db,
  secrets: SecretBox,
  id: string,
): Promise<{ id: string; access_key: string; secret_key: string } | null> {
  const secretKey = newSecretKey();
  const rows = await db.tenant.updateManyAndReturn({
    where: { id, revokedAt: null },
    data: { secretKey: secrets.seal(secretKey, sealContext(id, 'secret_key')) },
    select: { accessKey: true },
  });
  return rows.length === 1 ? { id, access_key: rows[0].accessKey, secret_key: secretKey } : null;
}

/**
 * Seals again, bound to their tenant and column, the values sealed before contexts existed (`v1:`).
 * Runs at every start; afterwards the box opens only bound values. Returns how many tenants changed.
 */
export async function resealLegacySecrets(db: Db, key: Buffer): Promise<number> {
  const box = createSecretBox(key);
  const legacy = await db.tenant.findMany({
    where: {
      OR: [
        { secretKey: { startsWith: 'v1:' } },
        { webhookSecret: { startsWith: 'v1:' } },
        { webhookSecretPrevious: { startsWith: 'v1:' } },
      ],
    },
  });
  const reseal = (id: string, column: SealedColumn, value: string) =>
    isLegacySealed(value) ? box.seal(openLegacy(key, value), sealContext(id, column)) : value;
  for (const t of legacy) {
    await db.tenant.updateMany({
      // Only if unchanged since read: a concurrent start resealed it already, or a rotation moved on.
      where: { id: t.id, secretKey: t.secretKey, webhookSecret: t.webhookSecret, webhookSecretPrevious: t.webhookSecretPrevious },
      data: {
        secretKey: reseal(t.id, 'secret_key', t.secretKey),
        webhookSecret: reseal(t.id, 'webhook_secret', t.webhookSecret),
        webhookSecretPrevious: t.webhookSecretPrevious && reseal(t.id, 'webhook_secret_previous', t.webhookSecretPrevious),
      },
    });
  }
  return legacy.length;
}

/** Ends a rotation: only the current secret signs. True if a previous secret was dropped. */
export async function finishWebhookRotation(db: Db, id: string): Promise<boolean> {
  const r = await db.tenant.updateMany({ where: { id, webhookSecretPrevious: { not: null } }, data: { webhookSecretPrevious: null } });
  return r.count === 1;
}
