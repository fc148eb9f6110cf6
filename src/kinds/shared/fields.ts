import { z } from 'zod';
import { checkBase64Image, isStrictBase64 } from './image-check';

// Checks and fields that every kind's create body shares, so each rule is written once and every
// kind refuses the same input with the same words.

export const MAX_PROMPT_CHARS = 2500;
const MAX_URL_CHARS = 2048;
const MAX_EXTERNAL_TASK_ID_CHARS = 256;
const ECHO_LIMIT = 50;

export function truncate(text: string): string {
  return text.length > ECHO_LIMIT ? `${text.slice(0, ECHO_LIMIT)}...` : text;
}

/** Error map for a schema's own issues: wrong type, missing, null, unknown keys. */
export function expecting(what: string) {
  return (issue: { code?: string; input?: unknown }): string => {
    if (issue.code === 'unrecognized_keys') return 'unknown field';
    if (issue.input === undefined) return 'is required';
    if (issue.input === null) return `must be ${what}, not null (omit the field to leave it unset)`;
    // z.int() reports integers beyond Number.MAX_SAFE_INTEGER this way; they would lose precision.
    if (issue.code === 'too_big' || issue.code === 'too_small') return `must be ${what} within the safe integer range`;
    return `must be ${what}`;
  };
}

/** Turns a `(value) => problem | null` check into a zod refinement. */
export function rule(check: (value: string) => string | null) {
  return (value: string, ctx: z.RefinementCtx) => {
    const problem = check(value);
    if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
  };
}

function checkHttpUrl(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an absolute http(s) URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `must be an http or https URL (got "${truncate(url.protocol)}")`;
  }
  if (url.hostname === '') return 'must be an http(s) URL with a host';
  return null;
}

function checkUrl(value: string): string | null {
  if (value.length > MAX_URL_CHARS) return `must be at most ${MAX_URL_CHARS} characters`;
  return checkHttpUrl(value);
}

/**
 * An input image as Kling takes it: an http(s) URL, or bare base64 (no `data:` prefix) of a JPEG or
 * PNG within Kling's size rules. `aspectRatio: false` for fields without the 1:2.5..2.5:1 rule.
 */
export function checkImage(value: string, options: { aspectRatio?: boolean } = {}): string | null {
  if (/^\s*data:/i.test(value)) return 'must be bare base64 without a "data:" prefix';
  if (value === '') return 'must not be empty';
  // ':' is outside the base64 alphabet, so anything containing it can only be meant as a URL.
  if (value.includes(':')) return checkUrl(value);
  if (!isStrictBase64(value)) {
    return 'must be an http(s) URL or valid bare base64 (A-Z, a-z, 0-9, + and / with = padding, no whitespace)';
  }
  return checkBase64Image(value, options);
}

function checkCallbackUrl(value: string): string | null {
  const problem = checkUrl(value);
  if (problem !== null) return problem;
  const url = new URL(value);
  // The URL is shown in every delivery listing and log line: no place for a password.
  if (url.username !== '' || url.password !== '') return 'must not contain credentials (user:password@)';
  // Percent-encoding can lengthen it: the bound holds for what is stored.
  if (url.href.length > MAX_URL_CHARS) return `must be at most ${MAX_URL_CHARS} characters once normalised (${url.href.length})`;
  return null;
}

/**
 * The WHATWG serialisation (`HTTPS://Hooks.Example.COM:443/a b` is `https://hooks.example.com/a%20b`):
 * stored once, so every reader of the row sees the same scheme, host and path.
 */
function normaliseUrl(value: string): string {
  return new URL(value).href;
}

/**
 * `model_name`: one of `models`, the first when left out. `explainRefusal` may give a string that
 * is not in the list a more precise reason than the list itself.
 */
export function modelNameField(models: readonly string[], explainRefusal: (input: string) => string | undefined = () => undefined) {
  const modelList = models.join(', ');
  return z
    .enum(models as [string, ...string[]], {
      error: (issue) =>
        typeof issue.input === 'string'
          ? (explainRefusal(issue.input) ?? `must be one of: ${modelList}`)
          : `must be a string, one of: ${modelList}`,
    })
    .default(models[0])
    .describe(`Model name; defaults to ${models[0]}`);
}

export const elementReference = z
  .object(
    {
      element_id: z
        .int({ error: expecting('an integer') })
        .positive('must be a positive integer')
        .describe('ID of an element in the Kling element library'),
    },
    { error: expecting('an object like {"element_id": 123}') },
  )
  .strict();

export const watermarkInfoField = z
  .object(
    { enabled: z.boolean({ error: expecting('a boolean') }).describe('Whether to also generate a watermarked result') },
    { error: expecting('an object like {"enabled": true}') },
  )
  .strict()
  .optional()
  .describe('Watermark options');

export const callbackUrlField = z
  .string({ error: expecting('a string') })
  .superRefine(rule(checkCallbackUrl))
  .transform(normaliseUrl)
  .optional()
  .describe(
    'Absolute http(s) URL notified when the task status changes (at most 2048 characters, no user:password@); ' +
      'stored and shown in its normalised form (lowercase scheme and host, default port dropped, percent-encoded)',
  );

export const externalTaskIdField = z
  .string({ error: expecting('a string') })
  .min(1, 'must not be empty')
  .max(MAX_EXTERNAL_TASK_ID_CHARS, `must be at most ${MAX_EXTERNAL_TASK_ID_CHARS} characters`)
  .refine((value) => !/\p{Cc}/u.test(value), 'must not contain control characters')
  .optional()
  .describe('Custom task ID, 1 to 256 characters, unique per upstream account');
