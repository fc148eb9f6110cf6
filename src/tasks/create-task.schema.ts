import { z } from 'zod';
import { pathOfNul } from '../lib/text';
import { checkBase64Image, isStrictBase64 } from './image-check';

// The body of POST /v1/images/generations, exactly as Kling accepts it. Only what the client sent
// is forwarded: defaults other than model_name are left to the upstream.
export type CreateTaskRequest = {
  model_name: string;
  prompt: string;
  negative_prompt?: string;
  image?: string;
  image_reference?: 'subject' | 'face';
  image_fidelity?: number;
  human_fidelity?: number;
  element_list?: { element_id: number }[];
  resolution?: '1k' | '2k';
  n?: number;
  aspect_ratio?: '1:1' | '16:9' | '4:3' | '3:2' | '2:3' | '3:4' | '9:16' | '21:9';
  watermark_info?: { enabled: boolean };
  callback_url?: string;
  external_task_id?: string;
};

export type ValidationResult = { ok: true; value: CreateTaskRequest } | { ok: false; field: string; message: string };

const MAX_PROMPT_CHARS = 2500;
const MAX_REFERENCES = 10;
const MAX_URL_CHARS = 2048;
const MAX_EXTERNAL_TASK_ID_CHARS = 256;
const ECHO_LIMIT = 50;

function truncate(text: string): string {
  return text.length > ECHO_LIMIT ? `${text.slice(0, ECHO_LIMIT)}...` : text;
}

/** Error map for a schema's own issues: wrong type, missing, null, unknown keys. */
function expecting(what: string) {
  return (issue: { code?: string; input?: unknown }): string => {
    if (issue.code === 'unrecognized_keys') return 'unknown field';
    if (issue.input === undefined) return 'is required';
    if (issue.input === null) return `must be ${what}, not null (omit the field to leave it unset)`;
    // z.int() reports integers beyond Number.MAX_SAFE_INTEGER this way; they would lose precision.
    if (issue.code === 'too_big' || issue.code === 'too_small') return `must be ${what} within the safe integer range`;
    return `must be ${what}`;
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

function checkImage(value: string): string | null {
  if (/^\s*data:/i.test(value)) return 'must be bare base64 without a "data:" prefix';
  if (value === '') return 'must not be empty';
  // ':' is outside the base64 alphabet, so anything containing it can only be meant as a URL.
  if (value.includes(':')) return checkUrl(value);
  if (!isStrictBase64(value)) {
    return 'must be an http(s) URL or valid bare base64 (A-Z, a-z, 0-9, + and / with = padding, no whitespace)';
  }
  return checkBase64Image(value);
}

function checkUrl(value: string): string | null {
  if (value.length > MAX_URL_CHARS) return `must be at most ${MAX_URL_CHARS} characters`;
  return checkHttpUrl(value);
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

/** Turns a `(value) => problem | null` check into a zod refinement. */
function rule(check: (value: string) => string | null) {
  return (value: string, ctx: z.RefinementCtx) => {
    const problem = check(value);
    if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
  };
}

const fidelity = (description: string) =>
  z
    .number({ error: expecting('a number') })
    .min(0, 'must be between 0 and 1')
    .max(1, 'must be between 0 and 1')
    .describe(description);

const elementSchema = z
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

function buildShape(models: readonly string[]) {
  const modelList = models.join(', ');
  return {
    model_name: z
      .enum(models as [string, ...string[]], {
        error: (issue) => (typeof issue.input === 'string' ? `must be one of: ${modelList}` : `must be a string, one of: ${modelList}`),
      })
      .default(models[0])
      .describe(`Model name; defaults to ${models[0]}`),
    prompt: z
      .string({ error: expecting('a string') })
      .refine((value) => value.trim() !== '', 'must not be blank')
      .max(MAX_PROMPT_CHARS, `must be at most ${MAX_PROMPT_CHARS} characters`)
      .describe('Positive text prompt (at most 2500 characters)'),
    negative_prompt: z
      .string({ error: expecting('a string') })
      .max(MAX_PROMPT_CHARS, `must be at most ${MAX_PROMPT_CHARS} characters`)
      .optional()
      .describe('Negative text prompt (at most 2500 characters); not supported together with image (image-to-image)'),
    image: z
      .string({ error: expecting('a string') })
      .superRefine(rule(checkImage))
      .optional()
      .describe(
        'Reference image: an http(s) URL or bare base64 without a "data:" prefix. JPEG or PNG, at most 10 MB, ' +
          'width and height at least 300 px, aspect ratio between 1:2.5 and 2.5:1. Required when image_reference is set',
      ),
    image_reference: z
      .enum(['subject', 'face'], { error: expecting('"subject" or "face"') })
      .optional()
      .describe(
        'Image reference type: subject (character features) or face (facial appearance; the image must contain exactly one face). Requires image',
      ),
    image_fidelity: fidelity('Reference strength of the uploaded image, 0 to 1 (upstream default 0.8)').optional(),
    human_fidelity: fidelity('Facial reference strength (similarity to the reference face), 0 to 1 (upstream default 0.8)').optional(),
    element_list: z
      .array(elementSchema, { error: expecting('an array') })
      .max(MAX_REFERENCES, `must have at most ${MAX_REFERENCES} elements`)
      .optional()
      .describe('Element references from the element library; elements plus reference images must be at most 10'),
    resolution: z
      .enum(['1k', '2k'], { error: expecting('"1k" or "2k"') })
      .optional()
      .describe('Generated image resolution (upstream default 1k)'),
    n: z
      .int({ error: expecting('an integer') })
      .min(1, 'must be between 1 and 9')
      .max(9, 'must be between 1 and 9')
      .optional()
      .describe('Number of images to generate, 1 to 9 (upstream default 1)'),
    aspect_ratio: z
      .enum(['1:1', '16:9', '4:3', '3:2', '2:3', '3:4', '9:16', '21:9'], {
        error: expecting('one of 1:1, 16:9, 4:3, 3:2, 2:3, 3:4, 9:16, 21:9'),
      })
      .optional()
      .describe('Aspect ratio (width:height) of generated images (upstream default 16:9)'),
    watermark_info: z
      .object(
        { enabled: z.boolean({ error: expecting('a boolean') }).describe('Whether to also generate a watermarked result') },
        { error: expecting('an object like {"enabled": true}') },
      )
      .strict()
      .optional()
      .describe('Watermark options'),
    callback_url: z
      .string({ error: expecting('a string') })
      .superRefine(rule(checkCallbackUrl))
      .transform(normaliseUrl)
      .optional()
      .describe(
        'Absolute http(s) URL notified when the task status changes (at most 2048 characters, no user:password@); ' +
          'stored and shown in its normalised form (lowercase scheme and host, default port dropped, percent-encoded)',
      ),
    external_task_id: z
      .string({ error: expecting('a string') })
      .min(1, 'must not be empty')
      .max(MAX_EXTERNAL_TASK_ID_CHARS, `must be at most ${MAX_EXTERNAL_TASK_ID_CHARS} characters`)
      .refine((value) => !/\p{Cc}/u.test(value), 'must not contain control characters')
      .optional()
      .describe('Custom task ID, 1 to 256 characters, unique per upstream account'),
  };
}

type ParsedShape = { negative_prompt?: string; image?: string; image_reference?: string; element_list?: unknown[] };

// Rules spanning fields. zod runs this only once every field has the right type.
function checkCrossFieldRules(value: ParsedShape, ctx: z.RefinementCtx): void {
  const hasImage = value.image !== undefined;
  if (value.negative_prompt !== undefined && hasImage) {
    ctx.addIssue({ code: 'custom', path: ['negative_prompt'], message: 'is not supported together with image (image-to-image)' });
  }
  if (value.image_reference !== undefined && !hasImage) {
    ctx.addIssue({ code: 'custom', path: ['image_reference'], message: 'requires image' });
  }
  const elements = value.element_list?.length ?? 0;
  if (elements + (hasImage ? 1 : 0) > MAX_REFERENCES) {
    ctx.addIssue({
      code: 'custom',
      path: ['element_list'],
      message: `elements plus reference images must be at most ${MAX_REFERENCES} (got ${elements} elements and ${hasImage ? 1 : 0} image)`,
    });
  }
}

/**
 * Kling's documented defaults for fields a client may leave out. Not sent upstream (the upstream
 * applies them itself); used where two requests must compare equal whether a default was spelled
 * out or not (the Idempotency-Key's request hash).
 */
const UPSTREAM_DEFAULTS = { n: 1, resolution: '1k', aspect_ratio: '16:9', image_fidelity: 0.8, human_fidelity: 0.8 } as const;

/** The request as the upstream will run it: the documented defaults filled in where absent. */
export function withUpstreamDefaults(request: CreateTaskRequest): CreateTaskRequest {
  return { ...UPSTREAM_DEFAULTS, ...request };
}

/** Schema of the create-task body; `models` is the configured allow-list, the first one is the default. */
export function buildCreateTaskRequest(models: readonly string[]): z.ZodType<CreateTaskRequest> {
  if (models.length === 0) throw new Error('buildCreateTaskRequest: at least one model name must be configured');
  return z
    .object(buildShape(models), { error: expecting('a JSON object') })
    .strict()
    .superRefine(checkCrossFieldRules)
    .describe('Kling image generation request (POST /v1/images/generations)');
}

// Built once per distinct model list: the list comes from configuration and rarely changes.
let cached: { key: string; schema: z.ZodType<CreateTaskRequest> } | undefined;

function schemaFor(models: readonly string[]): z.ZodType<CreateTaskRequest> {
  const key = JSON.stringify(models);
  if (cached?.key !== key) cached = { key, schema: buildCreateTaskRequest(models) };
  return cached.schema;
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

function failure(field: string, message: string): ValidationResult {
  return { ok: false, field, message: `${field}: ${message}` };
}

function firstFailure(issues: readonly z.core.$ZodIssue[]): ValidationResult {
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

/** Validates a create-task body; never throws for any body. */
export function validateCreateTaskRequest(body: unknown, models: readonly string[]): ValidationResult {
  const schema = schemaFor(models);
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
