import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Encryption at rest for the tenant secrets the service must use in clear (the AK/SK secret_key to
 * verify client JWTs, the whsec_ secrets to sign webhooks): AES-256-GCM with a key that lives
 * outside the database, so a database dump alone reveals no usable credential.
 */
export interface SecretBox {
  seal(plain: string): string;
  open(sealed: string): string;
}

const PREFIX = 'v1';

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== 32) throw new Error('the secrets key must be 32 bytes');
  return {
    seal(plain) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return [PREFIX, iv.toString('base64'), cipher.getAuthTag().toString('base64'), ct.toString('base64')].join(':');
    },
    open(sealed) {
      const [prefix, iv, tag, ct] = sealed.split(':');
      if (prefix !== PREFIX || !iv || !tag || ct === undefined) throw new Error('not a sealed secret');
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
      decipher.setAuthTag(Buffer.from(tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(ct, 'base64')), decipher.final()]).toString('utf8');
    },
  };
}

/**
 * `box.open` remembered per sealed string, for secrets opened on every use of a hot path (the
 * webhook secrets, per delivery). Keyed by the ciphertext, not the tenant: a rotation stores a new
 * ciphertext (fresh IV), so it is a miss and the new secret is used at once; nothing can go stale.
 * Cleared when full rather than evicted one by one: a refill costs one decryption per tenant.
 */
export function memoizedOpen(box: SecretBox, maxEntries = 10_000): (sealed: string) => string {
  const opened = new Map<string, string>();
  return (sealed) => {
    let plain = opened.get(sealed);
    if (plain === undefined) {
      plain = box.open(sealed);
      if (opened.size >= maxEntries) opened.clear();
      opened.set(sealed, plain);
    }
    return plain;
  };
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

/** The deployment's box; a generated key file is announced, since every process needs that key. */
export function secretBoxFor(
  config: { SECRETS_KEY?: string; SECRETS_KEY_FILE: string },
  log?: { warn(obj: object, msg: string): void },
): SecretBox {
  const { key, created } = loadSecretsKey({ key: config.SECRETS_KEY, file: config.SECRETS_KEY_FILE });
  if (created)
    log?.warn({ file: config.SECRETS_KEY_FILE }, 'created a new secrets key file; keep it (and back it up): stored secret_keys need it');
  return createSecretBox(key);
}
