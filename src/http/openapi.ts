import { extendZodWithOpenApi, OpenAPIRegistry, OpenApiGeneratorV31, type ResponseConfig } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { ERRORS, type ErrorName } from '../errors';
import type { ModelFamily, TaskKind } from '../kinds/kind';
import { KINDS } from '../kinds/registry';
import { UpstreamTask } from '../kinds/upstream-task';
import { CreatedTask as CreatedTaskShape, TaskObject as TaskObjectShape } from '../tasks/task-view';
import { MAX_WAIT_SECONDS, SSE_RETRY_MS, WaitQuery } from './task-watch.routes';
import { ListQuery } from './tasks.routes';
import { DeliveryView as DeliveryViewShape } from '../webhooks/deliveries.service';
import { EVENT_TYPE } from '../webhooks/events';
import { USER_AGENT } from '../webhooks/webhook-sender';
import { IdParam } from './request-input';

/** One line per error, for the description table and the error responses. */
const ERROR_TEXT: Record<ErrorName, string> = {
  invalid_request:
    'malformed request: body is not valid JSON or in an unsupported encoding, a path or query that is not valid percent-encoded UTF-8, or a request the HTTP parser refuses',
  invalid_parameter: 'invalid parameter (the message names the field), or an action the task does not allow now',
  auth_failed: 'authentication failed',
  auth_missing: 'Authorization header missing',
  auth_invalid:
    'invalid credentials: unknown or mistyped key, malformed header, bad JWT signature or claims, a JWT living longer than JWT_MAX_LIFETIME_S',
  token_not_yet_valid: 'JWT not valid yet (nbf in the future)',
  token_expired: 'JWT expired',
  route_not_found: 'no such route',
  not_found: "task or delivery not found (another tenant's task too)",
  link_invalid: 'a result link whose signature does not match (changed, or not made by this service)',
  link_expired: 'a result link past its expiry; read the task again for a fresh one',
  file_gone: "a stored result deleted by the tenant's retention",
  range_not_satisfiable: 'a Range header outside the file',
  request_timeout: 'the request did not arrive in time',
  payload_too_large: 'body too large (15 MB; 1 MB for upstream callbacks)',
  unsupported_media_type: 'body is not JSON (Content-Type: application/json)',
  conflict: 'Idempotency-Key already used with another body, or its first request is still being processed',
  expectation_failed: 'an `Expect` header other than `100-continue`',
  rate_limited:
    'too many requests (RATE_LIMIT_PER_MINUTE), too many failed authentications from this address (AUTH_FAILURES_PER_MINUTE), ' +
    'or, on create, unfinished tasks (MAX_UNFINISHED_TASKS); see Retry-After',
  headers_too_large: 'request line and headers too large',
  internal: 'internal error (no internals in the answer)',
  unavailable: 'temporarily unavailable (the database is down); retry later',
};

const SECURITY_SCHEMES = {
  apiKey: { type: 'http', scheme: 'bearer', description: '`Authorization: Bearer <api_key>`, the `api_key` printed by `keys create`.' },
  klingJwt: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description:
      "Kling's AK/SK form, so existing Kling clients work unchanged: `Authorization: Bearer <JWT>`, the JWT signed HS256 " +
      'with your `secret_key`, claims `{iss: <access_key>, exp, nbf}`. Only HS256; `exp` is required; a lifetime ' +
      '(exp - nbf, or exp - now) of at most JWT_MAX_LIFETIME_S (a day by default); 5 s clock tolerance. Expired: 401/1004; ' +
      'not yet valid: 401/1003; anything else wrong: 401/1002.',
  },
  adminToken: {
    type: 'http',
    scheme: 'bearer',
    description: '`Authorization: Bearer <ADMIN_TOKEN>`; without ADMIN_TOKEN set the admin routes answer 404.',
  },
  adminBasic: { type: 'http', scheme: 'basic', description: 'For browsers: any user name, ADMIN_TOKEN as the password.' },
} as const;

const byStatus = (a: ErrorName, b: ErrorName) => ERRORS[a].http - ERRORS[b].http || ERRORS[a].code - ERRORS[b].code;
const errorTable = () =>
  (Object.keys(ERRORS) as ErrorName[])
    .sort(byStatus)
    .map((name) => `| ${ERRORS[name].http} | ${ERRORS[name].code} | ${ERROR_TEXT[name]} |`)
    .join('\n');

const API_DESCRIPTION = `A self-hosted backend in front of Kling's image generation API: same paths, bodies, envelopes and status
values as Kling, plus a durable queue, retries, callback and polling tracking, signed webhooks and per-tenant keys.

Every answer is Kling's envelope \`{code, message, request_id, data?}\`; \`code\` 0 means success. Status values are
exactly Kling's: \`submitted\`, \`processing\`, \`succeed\`, \`failed\`. Everything else (internal state, queue position,
failure reason, upstream id, attempts) is under the one extension key \`tracker\` of the task object.

**Auth**: \`Authorization: Bearer <api_key>\`, or Kling's AK/SK JWT (see the security schemes).

**Idempotency**: \`Idempotency-Key\` on create returns the same task for the same key and body.

**Waiting for a task**: \`GET /v1/images/generations/{id}?wait=SECONDS\` (long poll), the \`/events\` stream, or a
webhook to your \`callback_url\` (see \`webhooks.taskStatusChanged\`).

## Errors

| HTTP | code | meaning |
|---|---|---|
${errorTable()}

Limits: 429/1302 with \`Retry-After\`. A request to an unknown route: 404/1202.`;

const WEBHOOK_DESCRIPTION = `Every change of the status you see (\`processing\`, \`succeed\`, \`failed\`) is POSTed to the task's
\`callback_url\`; the body is the task object exactly as GET returned it at that moment (Kling's callback shape).
Headers follow [Standard Webhooks](https://www.standardwebhooks.com), signed with your key's \`webhook_secret\`
(\`whsec_...\`): verify with any Standard Webhooks library. Written in the same transaction as the status change,
retried on WEBHOOK_RETRY_SCHEDULE_MS (by default 8 attempts over about 28 hours), delivered in order per task.
Deduplicate on \`webhook-id\`.
Event types (\`event_type\` in the deliveries list): ${Object.values(EVENT_TYPE).join(', ')}.`;

// Adds `.openapi()` to zod's prototype; idempotent, and it changes nothing about validation.
extendZodWithOpenApi(z);

// The shapes are declared once, by the code that serves them; here they only get their names. Schemas
// built at import time (before extendZodWithOpenApi ran) lack `.openapi()`; zod's own `.describe()`
// and `.extend()` return fresh copies that have it, with the same validation.

/** Kling's task object of a kind: its `task_result` is the kind's. */
const taskObjectOf = (taskResult: z.ZodType) => TaskObjectShape.extend({ task_result: taskResult });

/** Names of a kind's schemas in the document (`TextToVideoTaskObject`); image generation keeps the request's old name. */
const schemaName = (kind: TaskKind, what: 'TaskObject' | 'CreateTaskRequest' | 'TaskResponse' | 'TaskListResponse') => {
  const prefix = kind.id.replace(/(^|-)(.)/g, (_m, _dash, c: string) => c.toUpperCase());
  if (what === 'CreateTaskRequest') return kind.id === 'image-generation' ? what : `${prefix}Request`;
  return `${prefix}${what}`;
};

/** The task object of any kind (a webhook's body): its `task_result` is the kind's. */
export const TaskObject = taskObjectOf(z.union(KINDS.map((k) => k.taskResultSchema) as [z.ZodType, z.ZodType, ...z.ZodType[]])).openapi(
  'TaskObject',
  { description: "Kling's task object (GET answer and webhook body) plus the `tracker` extension; `task_result` is the kind's." },
);

const CreatedTask = CreatedTaskShape.describe("The create answer: Kling's shape").openapi('CreatedTask');

const DeliveryView = DeliveryViewShape.describe('A webhook delivery with every attempt').openapi('DeliveryView');

const envelopeOf = (name: string, data: z.ZodType) =>
  z
    .object({ code: z.literal(0), message: z.string().openapi({ example: 'SUCCEED' }), request_id: z.string(), data })
    .openapi(name, { description: "Kling's envelope; `code` 0 means success" });

const ERROR_CODES = [...new Set(Object.values(ERRORS).map((e) => e.code))].sort((a, b) => a - b);
const ErrorBody = z
  .object({
    code: z.int().openapi({ enum: ERROR_CODES }),
    message: z.string().describe('What went wrong; for 1201 it starts with the field'),
    request_id: z.string(),
  })
  .openapi('Error', { description: 'Every error answer: the envelope without data. Never a stack trace.' });

/** Error responses for the given errors, grouped by HTTP status, one example per business code. */
function errors(...names: ErrorName[]): Record<string, ResponseConfig> {
  const out: Record<string, ResponseConfig> = {};
  for (const name of [...new Set(names)].sort(byStatus)) {
    const { http, code } = ERRORS[name];
    const r = (out[http] ??= { description: '', content: { 'application/json': { schema: ErrorBody, examples: {} } } });
    r.description += `${r.description ? '; ' : ''}${code}: ${ERROR_TEXT[name]}`;
    const media = r.content!['application/json'] as { examples: Record<string, object> };
    media.examples[name] = { value: { code, message: ERROR_TEXT[name], request_id: '7d0c0d6e-8d0a-4c43-9d3e-2a2f3c1f2b1a' } };
    if (name === 'rate_limited') {
      r.headers = z.object({ 'Retry-After': z.int().describe('Seconds to wait before retrying') });
    }
  }
  return out;
}

const AUTH: ErrorName[] = ['auth_failed', 'auth_missing', 'auth_invalid', 'token_not_yet_valid', 'token_expired'];
const TENANT: ErrorName[] = [...AUTH, 'rate_limited', 'internal', 'unavailable'];
// Every tenant POST goes through the JSON body parser first, so these apply even without a body.
const TENANT_POST: ErrorName[] = ['invalid_request', 'payload_too_large', ...TENANT];

const ok = (description: string, schema: z.ZodType): ResponseConfig => ({ description, content: { 'application/json': { schema } } });
/** The errors of the two waiting routes, whose 429 also means "too many of them open". */
const watchErrors = () => {
  const out = errors('invalid_parameter', 'not_found', ...TENANT);
  out[429].description +=
    '; also when the tenant already holds MAX_WATCHERS_PER_TENANT (100) long polls and event streams open on this API ' +
    'process (Retry-After: when the first of them ends at the latest)';
  return out;
};
// Schemas built at import time (before extendZodWithOpenApi ran) lack `.openapi()`; zod's own
// `.describe()` returns a fresh copy that has it, with the same validation.
const idParams = z.object({ id: IdParam.describe('Our task_id, or your external_task_id').openapi({ example: 'demo-1' }) });
const PUBLIC: Record<string, string[]>[] = [];

function registerTaskRoutes(reg: OpenAPIRegistry, kind: TaskKind, models: readonly string[]): void {
  const body = reg.register(schemaName(kind, 'CreateTaskRequest'), kind.requestSchema(models));
  const taskObject = taskObjectOf(kind.taskResultSchema).openapi(schemaName(kind, 'TaskObject'), {
    description: `Kling's ${kind.title.toLowerCase()} task object (GET answer and webhook body) plus the \`tracker\` extension.`,
  });
  const taskAnswer = envelopeOf(schemaName(kind, 'TaskResponse'), taskObject);
  const base = kind.path;
  const tags = [kind.title];
  reg.registerPath({
    method: 'post',
    path: base,
    tags,
    summary: `Create a ${kind.title.toLowerCase()} task`,
    description:
      "Kling's body, checked completely before anything is stored (every rule of Kling's API reference, across fields " +
      'too); unknown fields are refused. `callback_url` and `external_task_id` are yours: they are never sent upstream. ' +
      'Answers as soon as the task is committed, before any upstream call.',
    request: {
      headers: z.object({
        'Idempotency-Key': z
          .string()
          .min(1)
          .max(255)
          .regex(/^[!-~]+$/)
          .optional()
          .describe(
            'Same key and body from the same tenant within IDEMPOTENCY_TTL_HOURS (24): the same task, answer header ' +
              '`idempotent-replayed: true`, no second upstream call. Same key, other body: 409/1201.',
          ),
      }),
      body: {
        required: true,
        content: {
          'application/json': { schema: body, example: kind.example },
        },
      },
    },
    responses: {
      200: {
        ...ok('Recorded; `task_status` is always `submitted`', envelopeOf('CreateTaskResponse', CreatedTask)),
        headers: z.object({ 'idempotent-replayed': z.literal('true').optional().describe('Present when an earlier task was returned') }),
      },
      ...errors('invalid_parameter', 'conflict', 'unsupported_media_type', ...TENANT_POST),
    },
  });
  reg.registerPath({
    method: 'get',
    path: base,
    tags,
    summary: `List your ${kind.title.toLowerCase()} tasks, newest first`,
    description: 'Kling paging. With `external_task_id`, answers that one task object instead of a list.',
    request: { query: ListQuery.extend({ external_task_id: IdParam.optional().describe('Look one task up by your own id') }) },
    responses: {
      200: ok(
        'A page of task objects (or one, with external_task_id)',
        envelopeOf(schemaName(kind, 'TaskListResponse'), z.union([z.array(taskObject), taskObject])),
      ),
      ...errors('invalid_parameter', 'not_found', ...TENANT),
    },
  });
  reg.registerPath({
    method: 'get',
    path: `${base}/{id}`,
    tags,
    summary: 'Get a task',
    request: {
      params: idParams,
      query: z.object({
        // The coercing schema accepts null (Number(null) is 0), which the generator reads as nullable;
        // a query string never carries a JSON null, so the documented type is a plain integer.
        wait: WaitQuery.optional()
          .openapi({ type: 'integer', minimum: 0, maximum: MAX_WAIT_SECONDS })
          .describe(
            `Long poll: wait up to this many seconds (0 to ${MAX_WAIT_SECONDS}) for the next change of the task, then answer it ` +
              'as it is then (at once for a finished task). While it waits it counts against MAX_WATCHERS_PER_TENANT; ' +
              '0, no `wait`, or a finished task do not.',
          ),
      }),
    },
    responses: { 200: ok('The task object', taskAnswer), ...watchErrors() },
  });
  reg.registerPath({
    method: 'get',
    path: `${base}/{id}/events`,
    tags,
    summary: 'Follow a task (Server-Sent Events)',
    request: { params: idParams },
    responses: {
      200: {
        description:
          `A Server-Sent Events stream: first \`retry: ${SSE_RETRY_MS}\` (EventSource reconnects after that many ms), then the ` +
          'task as it is now, then one event per change of its status, each `event: task` with `id:` the change sequence and ' +
          '`data:` the TaskObject as JSON (see the TaskObject schema); `: keepalive` comments every 15 s. The server closes ' +
          'the stream after the terminal status (`succeed` or `failed`), or after SSE_MAX_SECONDS (300) while the task is ' +
          'unfinished: reconnect to go on following it, from the task as it is then. An open stream of an unfinished task ' +
          'counts against MAX_WATCHERS_PER_TENANT.',
        content: {
          'text/event-stream': {
            schema: { type: 'string' },
            example: `retry: ${SSE_RETRY_MS}\n\nid: 2\nevent: task\ndata: {"task_id":"...","task_status":"processing",...}\n\n`,
          },
        },
      },
      ...watchErrors(),
    },
  });
  reg.registerPath({
    method: 'post',
    path: `${base}/{id}/cancel`,
    tags,
    summary: 'Cancel a task',
    description:
      'Not yet sent upstream: ends at once (`failed`, `tracker.state: "canceled"`). Already upstream, or its submission under way ' +
      '(Kling cannot cancel): `tracker.state: "canceling"`; the upstream task is followed to its end, keeping its slots, and its ' +
      'result is discarded. A finished task: 400/1201. Webhooks follow.',
    request: { params: idParams },
    responses: { 200: ok('The task after the cancel', taskAnswer), ...errors('invalid_parameter', 'not_found', ...TENANT_POST) },
  });
  registerDeliveryRoutes(reg, base);
}

function registerDeliveryRoutes(reg: OpenAPIRegistry, base: string): void {
  reg.registerPath({
    method: 'get',
    path: `${base}/{id}/deliveries`,
    tags: ['Webhooks'],
    summary: "List a task's webhook deliveries, each with every attempt",
    request: { params: idParams },
    responses: {
      200: ok('Deliveries in event order', envelopeOf('DeliveryListResponse', z.array(DeliveryView))),
      ...errors('not_found', ...TENANT),
    },
  });
  reg.registerPath({
    method: 'post',
    path: `${base}/{id}/deliveries/{webhook_id}/redeliver`,
    tags: ['Webhooks'],
    summary: 'Send a finished delivery again',
    description: 'A new attempt chain with the same `webhook-id` and body. A delivery still pending: 400/1201.',
    request: { params: idParams.extend({ webhook_id: IdParam.describe("The delivery's webhook_id (`msg_...`)") }) },
    responses: {
      200: ok('The delivery, pending again', envelopeOf('DeliveryResponse', DeliveryView)),
      ...errors('invalid_parameter', 'not_found', ...TENANT_POST),
    },
  });
}

function registerOperationRoutes(reg: OpenAPIRegistry): void {
  const open = { security: PUBLIC };
  const standardHeaders = z.object({
    'webhook-id': z.string().optional(),
    'webhook-timestamp': z.string().optional(),
    'webhook-signature': z.string().optional(),
  });
  reg.registerPath({
    method: 'post',
    path: '/callbacks/kling/{taskId}/{token}',
    tags: ['Upstream'],
    summary: "The upstream's callback (not for clients)",
    description:
      'The URL we give Kling for each task; the token makes it unguessable. Applied through the same forward-only status ' +
      'machine as polls. With KLING_WEBHOOK_SECRET set, the Standard Webhooks headers are required. 5xx only when the ' +
      'update could not be recorded, so a retrying upstream retries.',
    ...open,
    request: {
      params: z.object({ taskId: z.string(), token: z.string() }),
      headers: standardHeaders,
      body: {
        required: true,
        content: { 'application/json': { schema: UpstreamTask.describe('A task object as Kling sends it').openapi('UpstreamTask') } },
      },
    },
    responses: {
      200: ok('Recorded or harmlessly ignored', envelopeOf('CallbackResponse', z.object({ applied: z.boolean() }))),
      ...errors('invalid_request', 'invalid_parameter', 'auth_invalid', 'payload_too_large', 'internal', 'unavailable'),
    },
  });
  reg.registerPath({
    method: 'get',
    path: '/v1/files/{file}',
    tags: ['Results'],
    summary: 'A stored copy of a result (signed link)',
    description:
      'The links in `task_result` with RESULT_URLS=mirror. No Authorization: the signature is the credential. Answers ' +
      'range requests (206) for seeking in videos. Links expire (read the task again for fresh ones); a changed link is refused.',
    ...open,
    request: {
      params: z.object({ file: z.string().describe('`<file id>.<ext>`') }),
      query: z.object({ expires: z.string().describe('Unix seconds'), signature: z.string().describe('HMAC of the path and expiry') }),
    },
    responses: {
      200: { description: 'The file, with its content type, `Accept-Ranges: bytes`, an ETag and caching headers' },
      206: { description: 'The requested byte range (`Content-Range`)' },
      ...errors('link_invalid', 'link_expired', 'not_found', 'file_gone', 'range_not_satisfiable', 'unavailable'),
    },
  });
  const health = (path: string, summary: string, responses: Record<string, ResponseConfig>) =>
    reg.registerPath({ method: 'get', path, tags: ['Operations'], summary, ...open, responses });
  const readiness = z.object({
    code: z.int().openapi({ enum: [0, 5001] }),
    message: z.string(),
    request_id: z.string(),
    data: z.object({
      postgres: z.enum(['ok', 'down']),
      redis: z.enum(['ok', 'down']),
      workers: z.enum(['ok', 'down']),
      accounts: z.literal('down').optional().describe('Present when no upstream account can take work (all disabled or out of rotation)'),
    }),
  });
  health('/healthz', 'The process is alive', { 200: ok('Alive', envelopeOf('HealthResponse', z.object({ status: z.literal('alive') }))) });
  health('/readyz', 'Postgres and Redis answer, a worker heartbeat is recent, and an upstream account can take work', {
    200: ok('Ready', readiness),
    503: ok('Not ready (code 5001)', readiness),
  });
  health('/openapi.json', 'This document', {
    200: { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } },
  });
  health('/docs', 'Interactive API reference', {
    200: { description: 'Swagger UI', content: { 'text/html': { schema: { type: 'string' } } } },
  });
  const admin: Record<string, string[]>[] = [{ adminToken: [] }, { adminBasic: [] }];
  const adminErrors = errors('auth_invalid', 'route_not_found');
  adminErrors[401].headers = z.object({ 'WWW-Authenticate': z.string().describe('`Basic realm=...`, so a browser prompts for the token') });
  adminErrors[404].description += ' (also whenever ADMIN_TOKEN is not set: the admin routes do not exist then)';
  reg.registerPath({
    method: 'get',
    path: '/metrics',
    tags: ['Operations'],
    summary: 'Prometheus metrics',
    security: admin,
    responses: {
      200: { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } },
      ...adminErrors,
    },
  });
  reg.registerPath({
    method: 'get',
    path: '/admin/queues',
    tags: ['Operations'],
    summary: 'Queue dashboard (Bull Board)',
    security: admin,
    responses: { 200: { description: 'HTML dashboard', content: { 'text/html': { schema: { type: 'string' } } } }, ...adminErrors },
  });
}

function registerWebhook(reg: OpenAPIRegistry): void {
  reg.registerWebhook({
    method: 'post',
    path: 'taskStatusChanged',
    tags: ['Webhooks'],
    summary: "Sent to a task's callback_url on every change of its status",
    description: WEBHOOK_DESCRIPTION,
    security: PUBLIC,
    request: {
      headers: z.object({
        'webhook-id': z.string().describe('Event id (`msg_...`): the same on every retry and redelivery; deduplicate on it'),
        'webhook-timestamp': z.string().describe('Unix seconds of this attempt, signed'),
        'webhook-signature': z
          .string()
          .describe('`v1,<base64 HMAC-SHA256>` per active secret, space-separated (two during a secret rotation)'),
        'content-type': z.literal('application/json'),
        'user-agent': z.literal(USER_AGENT),
      }),
      body: { required: true, content: { 'application/json': { schema: TaskObject } } },
    },
    responses: {
      '2XX': { description: 'Delivered: no further attempts' },
      410: { description: 'Gone: stops retrying this delivery' },
      default: { description: 'Any other answer, a timeout or a redirect: retried (Retry-After honoured on 429/503)' },
    },
  });
}

/** The OpenAPI 3.1 document of the whole service, generated from the zod schemas that validate it. */
export function buildOpenApiDocument(opts: { models: Readonly<Record<ModelFamily, readonly string[]>>; serverUrl?: string }): object {
  const reg = new OpenAPIRegistry();
  for (const [name, scheme] of Object.entries(SECURITY_SCHEMES)) reg.registerComponent('securitySchemes', name, scheme);
  for (const kind of KINDS) registerTaskRoutes(reg, kind, opts.models[kind.models]);
  registerOperationRoutes(reg);
  registerWebhook(reg);
  return new OpenApiGeneratorV31(reg.definitions).generateDocument({
    openapi: '3.1.0',
    info: { title: 'kling-tracker', version: '0.1.0', description: API_DESCRIPTION },
    servers: [{ url: opts.serverUrl ?? '/' }],
    security: [{ apiKey: [] }, { klingJwt: [] }],
    tags: [
      ...KINDS.map((k) => ({ name: k.title, description: `Kling-compatible ${k.title.toLowerCase()} (\`${k.path}\`)` })),
      { name: 'Webhooks', description: 'Outgoing webhooks to your callback_url' },
      { name: 'Operations' },
      { name: 'Upstream', description: 'Called by Kling, not by clients' },
    ],
  });
}
