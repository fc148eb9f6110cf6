/**
 * Classification of upstream failures by Kling's business code (the HTTP status alone is not
 * enough: 429 covers both "retry later" (1302/1303) and "account in arrears" (1101)).
 */
export type UpstreamErrorKind =
  | 'auth_expired' // 1003/1004: re-sign the JWT and retry
  | 'rate_limited' // 1302
  | 'concurrency' // 1303: slots full, back off
  | 'server' // 5000-5002, other 5xx, malformed answers
  | 'network' // connection refused/reset, DNS
  | 'timeout' // no answer within the request timeout
  | 'already_exists' // our external_task_id is already known upstream: look it up instead
  | 'not_found' // 1203 on a query
  | 'rejected'; // everything permanent: auth, account, permission, invalid parameter, policy

const RETRYABLE: ReadonlySet<UpstreamErrorKind> = new Set(['auth_expired', 'rate_limited', 'concurrency', 'server', 'network', 'timeout']);

export class UpstreamError extends Error {
  readonly retryable: boolean;
  constructor(
    readonly kind: UpstreamErrorKind,
    message: string,
    readonly httpStatus?: number,
    readonly code?: number,
    /** Seconds from a Retry-After header, when the upstream sent one. */
    readonly retryAfterSec?: number,
  ) {
    super(message);
    this.name = 'UpstreamError';
    this.retryable = RETRYABLE.has(kind);
  }
}

export function classifyUpstreamAnswer(httpStatus: number, code: number | undefined, message: string): UpstreamErrorKind {
  if (code === 1003 || code === 1004) return 'auth_expired';
  if (code === 1302) return 'rate_limited';
  if (code === 1303) return 'concurrency';
  if (code !== undefined && code >= 5000 && code < 6000) return 'server';
  if (code === 1203 || (code === undefined && httpStatus === 404)) return 'not_found';
  if ((code === 1200 || code === 1201) && /already exist|duplicate/i.test(message) && /external/i.test(message)) return 'already_exists';
  if (code === undefined) {
    // No Kling body: judge by HTTP alone (a proxy or load balancer answered).
    if (httpStatus >= 500 || httpStatus === 429 || httpStatus === 408) return 'server';
    return 'rejected';
  }
  if (code >= 1000 && code < 2000) return 'rejected';
  return httpStatus >= 500 ? 'server' : 'rejected';
}
