import { createHash } from 'node:crypto';
import type { Db } from '../db/client';
import { invalidParameter } from '../errors';

/** Visible ASCII, as common practice for the header (Stripe, IETF draft): no spaces, no controls. */
const KEY_FORMAT = /^[\x21-\x7e]{1,255}$/;

/** The header's value, or undefined when absent; a malformed key is a 400/1201. */
export function parseIdempotencyKey(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (!KEY_FORMAT.test(header)) throw invalidParameter('Idempotency-Key: must be 1 to 255 visible ASCII characters');
  return header;
}

/** SHA-256 of the body as canonical JSON (keys sorted), so key order and spacing do not matter. */
export function requestHash(body: unknown): string {
  return createHash('sha256').update(canonical(body)).digest('hex');
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** Deletes the keys older than their TTL (IDEMPOTENCY_TTL_HOURS), so the table does not grow forever. Returns how many. */
export async function forgetExpiredIdempotencyKeys(db: Db, ttlMs: number): Promise<number> {
  const { count } = await db.idempotencyKey.deleteMany({ where: { createdAt: { lt: new Date(Date.now() - ttlMs) } } });
  return count;
}
