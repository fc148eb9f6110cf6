import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Db, Tenant } from '../db/client';
import type { SecretBox } from './secret-box';

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

/** Constant-time equality of two secrets of any length (compares their digests). */
export function safeEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}

/** Standard Webhooks secrets are `whsec_` + base64 of 24 to 64 random bytes. */
const newWebhookSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

/** Creates a tenant; the credentials are returned once and only the api_key's hash is kept. */
export async function createTenant(db: Db, secrets: SecretBox, name: string): Promise<NewTenantCredentials> {
  const apiKey = `kt_${randomBytes(24).toString('base64url')}`;
  const creds = {
    id: randomUUID(),
    name,
    api_key: apiKey,
    access_key: `ak_${randomBytes(12).toString('hex')}`,
    secret_key: randomBytes(32).toString('base64url'),
    webhook_secret: newWebhookSecret(),
  };
  await db.tenant.create({
    data: {
      id: creds.id,
      name,
      apiKeyHash: hashApiKey(apiKey),
      apiKeyPrefix: apiKey.slice(0, 7),
      accessKey: creds.access_key,
      secretKey: secrets.seal(creds.secret_key),
      webhookSecret: secrets.seal(creds.webhook_secret),
    },
  });
  return creds;
}

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
  await db.tenant.update({ where: { id }, data: { webhookSecret: secrets.seal(next), webhookSecretPrevious: tenant.webhookSecret } });
  return { id, webhook_secret: next };
}

/** Ends a rotation: only the current secret signs. True if a previous secret was dropped. */
export async function finishWebhookRotation(db: Db, id: string): Promise<boolean> {
  const r = await db.tenant.updateMany({ where: { id, webhookSecretPrevious: { not: null } }, data: { webhookSecretPrevious: null } });
  return r.count === 1;
}
