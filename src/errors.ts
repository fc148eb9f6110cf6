import { STATUS_CODES } from 'node:http';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { redactUrl } from './lib/redact-url';
import type { Logger } from './logger';

/** Every error this service answers with, mapped once to Kling's HTTP status and business code. */
export const ERRORS = {
  invalid_request: { http: 400, code: 1200 },
  invalid_parameter: { http: 400, code: 1201 },
  auth_failed: { http: 401, code: 1000 },
  auth_missing: { http: 401, code: 1001 },
  auth_invalid: { http: 401, code: 1002 },
  token_not_yet_valid: { http: 401, code: 1003 },
  token_expired: { http: 401, code: 1004 },
  route_not_found: { http: 404, code: 1202 },
  not_found: { http: 404, code: 1203 },
  link_invalid: { http: 403, code: 1002 },
  link_expired: { http: 403, code: 1004 },
  file_gone: { http: 410, code: 1203 },
  range_not_satisfiable: { http: 416, code: 1200 },
  request_timeout: { http: 408, code: 1200 },
  payload_too_large: { http: 413, code: 1200 },
  unsupported_media_type: { http: 415, code: 1200 },
  conflict: { http: 409, code: 1201 },
  expectation_failed: { http: 417, code: 1200 },
  rate_limited: { http: 429, code: 1302 },
  headers_too_large: { http: 431, code: 1200 },
  internal: { http: 500, code: 5000 },
  unavailable: { http: 503, code: 5001 },
} as const;

export type ErrorName = keyof typeof ERRORS;

export class AppError extends Error {
  constructor(
    readonly kind: ErrorName,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const invalidParameter = (message: string) => new AppError('invalid_parameter', message);

export interface KlingEnvelope<T = unknown> {
  code: number;
  message: string;
  request_id: string;
  data?: T;
}

export function envelope<T>(requestId: string, data: T): KlingEnvelope<T> {
  return { code: 0, message: 'SUCCEED', request_id: requestId, data };
}

/** The HTTP status and the one error body shape of an error. */
export function errorAnswer(e: AppError, requestId: string): { status: number; body: KlingEnvelope<never> } {
  const { http, code } = ERRORS[e.kind];
  return { status: http, body: { code, message: e.message, request_id: requestId } };
}

export const notFoundRoute: RequestHandler = (req, _res, next) => {
  next(new AppError('route_not_found', `no route for ${req.method} ${req.path}`));
};

/**
 * The one error middleware. Known errors answer with their own message; body-parser and router
 * errors are translated; anything else is logged with its stack and answered without internals.
 */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const requestId = String(res.locals.requestId ?? '');
    const where = { request_id: requestId, method: req.method, path: redactUrl(req.path) };
    const known = toAppError(err);
    if (!known) log.error({ err, ...where }, 'unhandled error');
    // Refused all the same, but an edge check is missing: whatever carried the NUL should have been checked before any query.
    else if (isNulRefusedByDatabase(err)) log.warn(where, 'a request value with NUL reached Postgres');
    const e = known ?? new AppError('internal', 'internal error');
    if (res.headersSent) return;
    const { status, body } = errorAnswer(e, requestId);
    res.status(status).set(e.headers).json(body);
  };
}

function toAppError(err: unknown): AppError | null {
  if (err instanceof AppError) return err;
  const type = (err as { type?: string } | null)?.type;
  if (type === 'entity.too.large') return new AppError('payload_too_large', 'request body is too large');
  if (type === 'entity.parse.failed') return new AppError('invalid_request', 'request body is not valid JSON');
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
    return new AppError('invalid_request', 'request body encoding is not supported');
  }
  if (isDatabaseUnavailable(err)) return new AppError('unavailable', 'service temporarily unavailable, retry later');
  if (isNulRefusedByDatabase(err)) return new AppError('invalid_request', 'request carries the NUL character (\\u0000), which is refused');
  return fromClientStatus(err);
}

/** The client errors that keep their own status; any other 4xx answers 400. */
const CLIENT_STATUS: Record<number, ErrorName> = {
  404: 'route_not_found',
  408: 'request_timeout',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  431: 'headers_too_large',
};

/**
 * Express's router, its body parsers and static files throw errors carrying a 4xx `status` (a path
 * parameter that does not percent-decode, an aborted or undecodable body): the client's fault, never a 500.
 */
function fromClientStatus(err: unknown): AppError | null {
  const e = err as { status?: unknown; statusCode?: unknown; expose?: unknown; message?: unknown } | null;
  const status = typeof e?.status === 'number' ? e.status : e?.statusCode;
  if (typeof status !== 'number' || status < 400 || status > 499) return null;
  // The router's own message quotes the raw parameter; http-errors say whether theirs may be shown.
  const shown = e?.expose === true && typeof e.message === 'string' && e.message !== STATUS_CODES[status] ? e.message : '';
  const detail = (err as Error).name === 'URIError' ? 'a path parameter is not valid percent-encoded UTF-8' : shown;
  return new AppError(CLIENT_STATUS[status] ?? 'invalid_request', `malformed request${detail ? `: ${detail}` : ''}`);
}

/** Postgres refused a NUL in a text value (22021): only a request can have carried it this far. */
function isNulRefusedByDatabase(err: unknown): boolean {
  const e = err as { code?: unknown; cause?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  return e.code === '22021' || isNulRefusedByDatabase(e.cause);
}

/** Connection-level failures of Postgres (down, restarting, pool exhausted) mean "retry later", not a bug. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: string; cause?: unknown; message?: string } | null;
  if (!e) return false;
  const codes = ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', '57P01', '57P03', '08006', '08001', 'P1001', 'P1017'];
  if (e.code && codes.includes(e.code)) return true;
  if (/Can't reach database|connection terminated|Connection terminated|ECONNREFUSED|the database system is/i.test(e.message ?? ''))
    return true;
  return e.cause ? isDatabaseUnavailable(e.cause) : false;
}
