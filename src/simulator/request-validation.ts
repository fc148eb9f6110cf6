import { klingErrors } from './sim-error';

/** Parses a raw request body into a JSON object, answering 1200 as Kling does otherwise. */
export function parseJsonObject(raw: unknown): Record<string, unknown> {
  if (typeof raw !== 'string' || raw.trim() === '') throw klingErrors.invalidRequest('empty body');
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw klingErrors.invalidRequest('body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw klingErrors.invalidRequest('body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

export interface Paging {
  pageNum: number;
  pageSize: number;
}

export function parsePaging(query: Record<string, unknown>): Paging {
  return {
    pageNum: intParam(query, 'pageNum', 1, 1000, 1),
    pageSize: intParam(query, 'pageSize', 1, 500, 30),
  };
}

function intParam(query: Record<string, unknown>, name: string, min: number, max: number, fallback: number): number {
  const value = query[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !/^\d+$/.test(value)) {
    throw klingErrors.invalidParam(`${name}: must be an integer`);
  }
  const parsed = Number(value);
  if (parsed < min || parsed > max) {
    throw klingErrors.invalidParam(`${name}: must be between ${min} and ${max}`);
  }
  return parsed;
}
