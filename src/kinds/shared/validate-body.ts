import type { z } from 'zod';
import { pathOfNul } from '../../lib/text';
import type { Validation } from '../kind';
import { truncate } from './fields';

/**
 * A schema builder memoised on its model list: the list comes from configuration and rarely
 * changes, so each kind builds its schema once per distinct list.
 */
export function memoiseByModels<S>(build: (models: readonly string[]) => S): (models: readonly string[]) => S {
  let cached: { key: string; schema: S } | undefined;
  return (models) => {
    const key = JSON.stringify(models);
    if (cached?.key !== key) cached = { key, schema: build(models) };
    return cached.schema;
  };
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? String(segment) : `.${String(segment)}`;
  }
  return out === '' ? 'body' : out;
}

// Unknown keys are client-chosen: quote anything that is not a plain identifier, and cap the length.
function formatUnknownKey(key: string): string {
  return /^[A-Za-z0-9_$-]{1,50}$/.test(key) ? key : JSON.stringify(truncate(key));
}

function failure(field: string, message: string): { ok: false; field: string; message: string } {
  return { ok: false, field, message: `${field}: ${message}` };
}

function firstFailure(issues: readonly z.core.$ZodIssue[]): { ok: false; field: string; message: string } {
  // Unknown fields come first: a misspelt key also makes the intended field look missing,
  // and the typo is the more useful thing to tell the client.
  const unknown = issues.find((issue) => issue.code === 'unrecognized_keys');
  if (unknown && unknown.code === 'unrecognized_keys' && unknown.keys.length > 0) {
    const parent = unknown.path.length > 0 ? `${formatPath(unknown.path)}.` : '';
    return failure(`${parent}${formatUnknownKey(unknown.keys[0])}`, 'unknown field');
  }
  const issue = issues[0];
  if (!issue) return failure('body', 'is invalid');
  return failure(formatPath(issue.path), issue.message);
}

/**
 * Validates a create body against a kind's schema: the parsed request, or the first problem with
 * the path of its field (`field: message`). Never throws for any body.
 */
export function validateBody<T>(schema: z.ZodType<T>, body: unknown): Validation<T> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return failure('body', 'must be a JSON object');
  }
  try {
    const result = schema.safeParse(body);
    if (!result.success) return firstFailure(result.error.issues);
    const nul = pathOfNul(result.data);
    return nul === null ? { ok: true, value: result.data } : failure(nul || 'body', 'must not contain the NUL character (\\u0000)');
  } catch {
    // Only exotic inputs (throwing getters, proxies) get here; JSON.parse output never does.
    return failure('body', 'could not be validated');
  }
}
