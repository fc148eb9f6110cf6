import { randomUUID } from 'node:crypto';

/** An answer in Kling's error envelope: HTTP status plus Kling business code. */
export class KlingApiError extends Error {
  constructor(
    readonly http: number,
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'KlingApiError';
  }
}

export const klingErrors = {
  authEmpty: () => new KlingApiError(401, 1001, 'Authorization is empty'),
  authInvalid: () => new KlingApiError(401, 1002, 'Authorization is invalid'),
  tokenNotYetValid: () => new KlingApiError(401, 1003, 'Authorization is not yet valid'),
  tokenExpired: () => new KlingApiError(401, 1004, 'Authorization has expired'),
  invalidRequest: (detail: string) => new KlingApiError(400, 1200, `invalid request: ${detail}`),
  invalidParam: (detail: string) => new KlingApiError(400, 1201, `invalid parameter: ${detail}`),
  duplicateExternalId: () => new KlingApiError(400, 1201, 'external_task_id already exists'),
  unknownRoute: () => new KlingApiError(404, 1202, 'invalid request method or path'),
  taskNotFound: () => new KlingApiError(404, 1203, 'task not found'),
  packExhausted: () => new KlingApiError(429, 1102, 'resource pack exhausted or expired'),
  concurrencyExceeded: () => new KlingApiError(429, 1303, 'parallel task over resource pack limit'),
  internal: () => new KlingApiError(500, 5000, 'internal error'),
  closed: () => new KlingApiError(503, 5001, 'service under maintenance (simulator closed)'),
};

export interface KlingEnvelope {
  code: number;
  message: string;
  request_id: string;
  data?: unknown;
}

export function successEnvelope(data: unknown): KlingEnvelope {
  return { code: 0, message: 'SUCCEED', request_id: randomUUID(), data };
}

export function errorEnvelope(error: { code: number; message: string }): KlingEnvelope {
  return { code: error.code, message: error.message, request_id: randomUUID() };
}
