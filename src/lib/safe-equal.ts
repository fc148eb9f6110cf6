import { createHash, timingSafeEqual } from 'node:crypto';

/** Constant-time equality of two secrets of any length (compares their digests). */
export function safeEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}
