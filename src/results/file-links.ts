import { createHmac, timingSafeEqual } from 'node:crypto';

/** A stored copy as a link names it: its ResultFile id and a file extension (for the browser's sake). */
export interface StoredFileRef {
  id: string;
  ext: string;
}

export type LinkCheck = 'ok' | 'expired' | 'invalid';

/**
 * Signed, expiring links to stored copies (`/v1/files/<id>.<ext>?expires=&signature=`), readable
 * without credentials. The signature is an HMAC of the path and the expiry under a key derived from
 * the secrets key: a link cannot be made or extended without it, and changing any part breaks it.
 * Expiries are rounded up to the minute, so links made within one minute are the same URL (a
 * browser's cache keeps working while a client re-reads the task).
 */
export interface FileLinks {
  url(file: StoredFileRef, now?: Date): string;
  check(path: string, expires: string | undefined, signature: string | undefined, now?: Date): LinkCheck;
}

export const FILES_PATH = '/v1/files';
const SIGNATURE = /^[A-Za-z0-9_-]{43}$/;
const EXPIRES = /^\d{1,12}$/;

export function createFileLinks(opts: { baseUrl: () => string; key: Buffer; ttlMs: number }): FileLinks {
  const mac = (path: string, expires: string) => createHmac('sha256', opts.key).update(`${path}\n${expires}`).digest('base64url');
  return {
    url(file, now = new Date()) {
      const path = `${FILES_PATH}/${encodeURIComponent(file.id)}.${file.ext}`;
      const expires = String(Math.ceil((now.getTime() + opts.ttlMs) / 60_000) * 60);
      return `${opts.baseUrl()}${path}?expires=${expires}&signature=${mac(path, expires)}`;
    },
    check(path, expires, signature, now = new Date()) {
      if (!expires || !signature || !EXPIRES.test(expires) || !SIGNATURE.test(signature)) return 'invalid';
      if (!timingSafeEqual(Buffer.from(mac(path, expires)), Buffer.from(signature))) return 'invalid';
      return Number(expires) * 1000 <= now.getTime() ? 'expired' : 'ok';
    },
  };
}
