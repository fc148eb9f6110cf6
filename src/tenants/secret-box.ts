import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Encryption at rest for the tenant secrets the service must use in clear (the AK/SK secret_key to
 * verify client JWTs, the whsec_ secrets to sign webhooks): AES-256-GCM with a key that lives
 * outside the database, so a database dump alone reveals no usable credential.
 *
 * Each value is bound to where it is stored (`context`: tenant and column, as associated data): a
 * ciphertext copied into another tenant's row, or into another column, does not open. The tag is
 * always the full 16 bytes: a shortened tag is refused, not checked on fewer bits.
 */
export interface SecretBox {
  seal(plain: string, context: string): string;
  open(sealed: string, context: string): string;
  /** A key for another purpose (e.g. callback tokens), derived from the secrets key with HKDF. */
  deriveKey(purpose: string): Buffer;
}

/** The columns of `tenants` that hold sealed values. */
export type SealedColumn = 'secret_key' | 'webhook_secret' | 'webhook_secret_previous';

/** Where a sealed value lives: its tenant and column. */
export const sealContext = (tenantId: string, column: SealedColumn) => `tenants.${column}:${tenantId}`;

const PREFIX = 'v2';
/** Values sealed before contexts existed: opened only to be sealed again (resealLegacySecrets). */
const LEGACY_PREFIX = 'v1';
const TAG_BYTES = 16;

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== 32) throw new Error('the secrets key must be 32 bytes');
  return {
    seal(plain, context) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(Buffer.from(context, 'utf8'));
      const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return [PREFIX, iv.toString('base64'), cipher.getAuthTag().toString('base64'), ct.toString('base64')].join(':');
    },
    open(sealed, context) {
      const parts = parseSealed(sealed, PREFIX);
      return decrypt(key, parts, Buffer.from(context, 'utf8'));
    },
    deriveKey(purpose) {
      return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `kling-tracker ${purpose}`, 32));
    },
  };
}

/** A value sealed before contexts existed (`v1:`, no associated data), for resealing it. */
export function openLegacy(key: Buffer, sealed: string): string {
  return decrypt(key, parseSealed(sealed, LEGACY_PREFIX));
}

export const isLegacySealed = (sealed: string) => sealed.startsWith(`${LEGACY_PREFIX}:`);

function parseSealed(sealed: string, prefix: string): { iv: Buffer; tag: Buffer; ct: Buffer } {
  const [p, iv, tag, ct, extra] = sealed.split(':');
  if (p !== prefix || !iv || !tag || ct === undefined || extra !== undefined) throw new Error('not a sealed secret');
  return { iv: Buffer.from(iv, 'base64'), tag: Buffer.from(tag, 'base64'), ct: Buffer.from(ct, 'base64') };
}

function decrypt(key: Buffer, { iv, tag, ct }: { iv: Buffer; tag: Buffer; ct: Buffer }, aad?: Buffer): string {
  if (tag.length !== TAG_BYTES) throw new Error('not a sealed secret: the tag must be 16 bytes');
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  if (aad) decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(ct), decipher.final()]).toString('utf8');
}

/**
 * `box.open` remembered per sealed string and context, for secrets opened on every use of a hot
 * path (the webhook secrets, per delivery). Keyed by the ciphertext, not the tenant: a rotation
 * stores a new ciphertext (fresh IV), so it is a miss and the new secret is used at once; nothing
 * can go stale. Cleared when full rather than evicted one by one: a refill costs one decryption per
 * tenant.
 */
export function memoizedOpen(box: SecretBox, maxEntries = 10_000): (sealed: string, context: string) => string {
  const opened = new Map<string, string>();
  return (sealed, context) => {
    const key = `${context}\n${sealed}`;
    let plain = opened.get(key);
    if (plain === undefined) {
      plain = box.open(sealed, context);
      if (opened.size >= maxEntries) opened.clear();
      opened.set(key, plain);
    }
    return plain;
  };
}

/** Opens a tenant's webhook secrets as stored: the current one, then the previous one during a rotation. */
export type OpenWebhookSecrets = (tenantId: string, sealed: string[]) => string[];

export function webhookSecretOpener(box: SecretBox): OpenWebhookSecrets {
  const open = memoizedOpen(box);
  return (tenantId, sealed) => sealed.map((s, i) => open(s, sealContext(tenantId, i === 0 ? 'webhook_secret' : 'webhook_secret_previous')));
}

/**
 * The key: SECRETS_KEY (base64 of 32 bytes) when set; otherwise the file SECRETS_KEY_FILE, created
 * with a random key (mode 0600) the first time. Every process of a deployment must use the same key.
 */
export function loadSecretsKey(opts: { key?: string; file: string }): { key: Buffer; created: boolean } {
  if (opts.key) return { key: Buffer.from(opts.key, 'base64'), created: false };
  const file = path.resolve(opts.file);
  try {
    return { key: Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64'), created: false };
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
  }
  const key = randomBytes(32);
  try {
    fs.writeFileSync(file, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    return { key, created: true };
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as { code?: string }).code === 'EEXIST') return loadSecretsKey(opts);
    throw err;
  }
}

/** The deployment's key, loaded once; a generated key file is announced, since every process needs that key. */
export function secretsKeyFor(
  config: { SECRETS_KEY?: string; SECRETS_KEY_FILE: string },
  log?: { warn(obj: object, msg: string): void },
): Buffer {
  const { key, created } = loadSecretsKey({ key: config.SECRETS_KEY, file: config.SECRETS_KEY_FILE });
  if (created)
    log?.warn({ file: config.SECRETS_KEY_FILE }, 'created a new secrets key file; keep it (and back it up): stored secret_keys need it');
  return key;
}
