import { randomInt } from 'node:crypto';
import { crc32 } from 'node:zlib';

/**
 * API keys carry a checksum, as the major platforms' tokens do: `kt_` + 32 random base62
 * characters (190 bits) + 6 base62 characters of the CRC-32 of those 32. A typo, a truncated paste
 * or a random string is refused by arithmetic alone, without a database lookup. Keys issued before
 * checksums (`kt_` + 32 base64url characters) still work, through a lookup.
 */
const PREFIX = 'kt_';
const BODY_CHARS = 32;
const CHECK_CHARS = 6;
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

const CURRENT = new RegExp(`^${PREFIX}[0-9A-Za-z]{${BODY_CHARS + CHECK_CHARS}}$`);
const LEGACY = new RegExp(`^${PREFIX}[A-Za-z0-9_-]{32}$`);

export function newApiKey(): string {
  let body = '';
  for (let i = 0; i < BODY_CHARS; i++) body += BASE62[randomInt(62)];
  return `${PREFIX}${body}${checksum(body)}`;
}

/** `valid`: checksum holds; `legacy`: a key of the format before checksums; `malformed`: neither. */
export type ApiKeyShape = 'valid' | 'legacy' | 'malformed';

export function apiKeyShape(token: string): ApiKeyShape {
  if (CURRENT.test(token)) {
    const body = token.slice(PREFIX.length, PREFIX.length + BODY_CHARS);
    return token.slice(PREFIX.length + BODY_CHARS) === checksum(body) ? 'valid' : 'malformed';
  }
  return LEGACY.test(token) ? 'legacy' : 'malformed';
}

function checksum(body: string): string {
  let n = crc32(body);
  let out = '';
  for (let i = 0; i < CHECK_CHARS; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}
