import type { Request } from 'express';
import { z } from 'zod';
import { invalidParameter } from '../errors';
import { hasNul } from '../lib/text';

/** Longest id taken from a path or a query: external_task_id's own limit, far above our ids. */
export const MAX_ID_CHARS = 256;

const ID_LENGTH = `must be 1 to ${MAX_ID_CHARS} characters`;

/**
 * An id given in a path or a query (a task_id, an external_task_id, a webhook_id). Checked before
 * any query: Postgres refuses NUL, and a longer value cannot name anything stored.
 */
export const IdParam = z
  .string()
  .min(1, ID_LENGTH)
  .max(MAX_ID_CHARS, ID_LENGTH)
  .refine((s) => !hasNul(s), 'must not contain the NUL character (\\u0000)');

/** A path parameter (the router has percent-decoded it) as an id; 400/1201 naming it otherwise. */
export function pathId(req: Request, name: string): string {
  return parsed(name, IdParam, req.params[name]);
}

/** `name`'s one value in the query, parsed by `schema`; undefined when absent. */
export function queryParam<T>(req: Request, name: string, schema: z.ZodType<T>): T | undefined {
  const value = singleQueryValue(req, name);
  return value === undefined ? undefined : parsed(name, schema, value);
}

/** Every key of `schema` from the query, each at most once, parsed together (defaults apply). */
export function parseQuery<S extends z.ZodObject>(req: Request, schema: S): z.output<S> {
  const values = Object.fromEntries(Object.keys(schema.shape).map((name) => [name, singleQueryValue(req, name)]));
  const result = schema.safeParse(values);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw invalidParameter(`${String(issue.path[0])}: ${issue.message}`);
}

/**
 * A query parameter given twice (`?a=1&a=2`) or in bracket form (`?a[]=1`) has no one meaning:
 * refused rather than guessed at.
 */
function singleQueryValue(req: Request, name: string): string | undefined {
  // Express parses the query again on every read of req.query.
  const query = req.query;
  const value = query[name];
  const bracketed = Object.keys(query).some((key) => key.startsWith(`${name}[`));
  if ((value === undefined || typeof value === 'string') && !bracketed) return value;
  throw invalidParameter(`${name}: must be given once, as ${name}=value`);
}

function parsed<T>(name: string, schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw invalidParameter(`${name}: ${result.error.issues[0].message}`);
}
