import { createHmac, timingSafeEqual } from 'node:crypto';
import { safeEqual } from '../lib/safe-equal';

/** Path of a task's upstream callback; the token makes the URL unguessable even if the id leaks. */
export const callbackPath = (taskId: string, token: string) => `/callbacks/kling/${encodeURIComponent(taskId)}/${token}`;

/**
 * The token in a task's callback URL is a MAC of the task id under a key derived from the secrets
 * key: nothing usable is stored (a database dump cannot complete anyone's task), and a retried
 * submission sends the same URL as the first. Tasks created before tokens were derived keep the
 * random token stored on their row, checked against it.
 */
export interface CallbackTokens {
  forTask(taskId: string): string;
  /** `valid` / `invalid` from arithmetic alone; `stored`: the format of a stored token, to compare with the row's. */
  check(taskId: string, token: string): 'valid' | 'invalid' | 'stored';
  /** Whether a token matches a task's stored (older) token. */
  matchesStored(stored: string | null, token: string): boolean;
}

const MAC_FORMAT = /^[A-Za-z0-9_-]{43}$/;
/** Stored tokens as they were issued: 32 base64url characters, later 64 hex digits. */
const STORED_FORMAT = /^(?:[A-Za-z0-9_-]{32}|[0-9a-f]{64})$/;

export function callbackTokens(key: Buffer): CallbackTokens {
  const forTask = (taskId: string) => createHmac('sha256', key).update(taskId).digest('base64url');
  return {
    forTask,
    check(taskId, token) {
      if (MAC_FORMAT.test(token)) return timingSafeEqual(Buffer.from(forTask(taskId)), Buffer.from(token)) ? 'valid' : 'invalid';
      return STORED_FORMAT.test(token) ? 'stored' : 'invalid';
    },
    matchesStored: (stored, token) => stored !== null && safeEqual(stored, token),
  };
}
