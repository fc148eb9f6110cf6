/**
 * The statements that write a history of finished tasks in bulk (`INSERT ... SELECT
 * generate_series`), shaped as the service leaves a finished task: the row with its kind, pool,
 * request and result; its events; with a callback_url, a webhook delivery per client-visible change
 * and the delivery's attempts. Each draw is a hash of the row number or of the row's id, so a seed
 * of a given size is the same mix of kinds, outcomes and timings every time.
 */

/** A number in [0, 1) drawn from `key` (a bigint expression) under `salt`. */
const draw = (key: string, salt: number) => `((hashint8extended(${key}, ${salt}) & 2147483647)::float8 / 2147483648)`;
const u = (salt: number) => draw('g.i::bigint', salt);
const seconds = (x: string) => `((${x}) * interval '1 second')`;
const ms = (ts: string) => `(extract(epoch FROM ${ts}) * 1000)::bigint`;
const text = (s: string) => `'${s.replace(/'/g, "''")}'`;
const pick = (values: (string | number)[], x: string) =>
  `(ARRAY[${values.map((v) => (typeof v === 'number' ? v : text(v))).join(', ')}])[1 + floor(${x} * ${values.length})::int]`;
/** CASE over cumulative shares: the first branch whose `upTo` is above `x`. */
const shares = (x: string, branches: { upTo: number; value: string }[]) =>
  `CASE ${branches.map((b, i) => (i === branches.length - 1 ? `ELSE ${b.value}` : `WHEN ${x} < ${b.upTo} THEN ${b.value}`)).join(' ')} END`;

/** Kinds and their cumulative share of the tasks. */
const KINDS = [
  { id: 'image-generation', upTo: 0.6 },
  { id: 'text-to-video', upTo: 0.9 },
  { id: 'image-to-video', upTo: 1 },
];

/** One recorded change of a finished task (from, to, source, the webhook it sends when the client's status changes). */
type Step = [from: string | null, to: string, source: string, event: string | null];
const CREATED: Step = [null, 'queued', 'api', null];
const SUBMITTED: Step = ['queued', 'submitted', 'submit', null];
const PROCESSING: Step = ['submitted', 'processing', 'callback', 'task.processing'];
const failedBy = (from: string, source: string): Step => [from, 'failed', source, 'task.failed'];

/**
 * How tasks end, with their cumulative share, the status message they end with and their changes:
 * mostly succeed; some fail upstream, are refused, are canceled while queued, or time out at a stage.
 */
const OUTCOMES: { name: string; upTo: number; message: string; steps: Step[] }[] = [
  {
    name: 'succeed',
    upTo: 0.9,
    message: '',
    steps: [CREATED, SUBMITTED, PROCESSING, ['processing', 'succeed', 'callback', 'task.succeeded']],
  },
  {
    name: 'upstream_failed',
    upTo: 0.94,
    message: 'Failure to pass the risk control system',
    steps: [CREATED, SUBMITTED, PROCESSING, failedBy('processing', 'callback')],
  },
  {
    name: 'upstream_rejected',
    upTo: 0.95,
    message: 'upstream refused the task: prompt contains sensitive content (code 1301)',
    steps: [CREATED, failedBy('queued', 'submit')],
  },
  { name: 'canceled', upTo: 0.97, message: 'canceled by the client', steps: [CREATED, failedBy('queued', 'api')] },
  {
    name: 'queue_timeout',
    upTo: 0.98,
    message: 'timed out: waited more than 60 min in the local queue before reaching the upstream',
    steps: [CREATED, failedBy('queued', 'sweep')],
  },
  {
    name: 'start_timeout',
    upTo: 0.99,
    message: 'timed out: the upstream accepted the task but did not start it in time',
    steps: [CREATED, SUBMITTED, failedBy('submitted', 'sweep')],
  },
  {
    name: 'total_timeout',
    upTo: 1,
    message: 'timed out: not finished in time after its creation',
    steps: [CREATED, SUBMITTED, PROCESSING, failedBy('processing', 'sweep')],
  },
];

const PROMPTS = [
  'a lighthouse at dawn, oil painting, warm light over a calm sea',
  'portrait of an astronaut in a sunflower field, 35mm film, shallow depth of field',
  'a red fox running through fresh snow, slow motion, cinematic',
  'product shot of a ceramic mug on a wooden table, soft studio lighting',
  'aerial view of a winding river through autumn forest, golden hour',
  'a cyberpunk street market at night in the rain, neon reflections',
  'waves rolling onto a beach at sunset, drone shot',
  'a paper boat drifting on a puddle, macro, bokeh',
];

const reached = (state: string) =>
  OUTCOMES.filter((o) => o.steps.some((s) => s[1] === state))
    .map((o) => text(o.name))
    .join(', ');
const outcomeOf = (t: string) => `coalesce(${t}.failure_reason, 'succeed')`;

/** The changes of every outcome as rows: (outcome, seq, from_state, to_state, source, event_type). */
const STEPS = `(VALUES ${OUTCOMES.flatMap((o) =>
  o.steps.map(
    ([from, to, source, event], i) =>
      `(${text(o.name)}, ${i + 1}, ${from ? text(from) : 'NULL'}, ${text(to)}, ${text(source)}, ${event ? text(event) : 'NULL'})`,
  ),
).join(', ')}) AS s(outcome, seq, from_state, to_state, source, event_type)`;

/** When a task reached a state (for its events and deliveries). */
const reachedAt = (t: string, state: string) => `CASE ${state}
  WHEN 'queued' THEN ${t}.created_at
  WHEN 'submitted' THEN ${t}.submitted_at
  WHEN 'processing' THEN ${t}.submitted_at + (${t}.finished_at - ${t}.submitted_at) * 0.15
  ELSE ${t}.finished_at END`;

/**
 * The tasks. $1 the tenant ids: a task's tenant is number floor(count * u^2), so the first one has
 * the largest share (a tenth) and the last the smallest; $2 how many tasks; $3 and $4 the first and
 * the last created_at, with more tasks per day as time goes on (rows in created_at order, as a
 * table filled over months); $5 the share with an external_task_id; $6 the share with a callback_url.
 */
export const INSERT_TASKS = `
INSERT INTO tasks (id, tenant_id, request_id, external_task_id, kind, pool, state, request, model_name, slot_cost, callback_url,
  upstream_task_id, status_msg, failure_reason, result, upstream_created_at, upstream_updated_at, submit_attempts, event_seq,
  created_at, updated_at, submitted_at, finished_at)
SELECT gen_random_uuid()::text, ($1::text[])[a.tenant + 1], gen_random_uuid()::text,
  CASE WHEN ${u(5)} < $5 THEN 'ord-' || a.tenant || '-' || g.i END,
  a.kind, CASE a.kind WHEN 'image-generation' THEN 'image' ELSE 'video' END,
  (CASE a.outcome WHEN 'succeed' THEN 'succeed' ELSE 'failed' END)::task_state,
  CASE a.kind
    WHEN 'image-generation' THEN jsonb_build_object('model_name', 'kling-v3', 'prompt', b.prompt, 'n', b.n, 'aspect_ratio', b.aspect)
    WHEN 'text-to-video' THEN jsonb_build_object('model_name', 'kling-v3', 'prompt', b.prompt, 'duration', b.duration,
      'mode', ${pick(['std', 'pro'], u(9))}, 'aspect_ratio', b.aspect)
    ELSE jsonb_build_object('model_name', 'kling-v3', 'image', 'https://assets.client' || a.tenant || '.example.com/frames/' || g.i || '.png',
      'prompt', b.prompt, 'duration', b.duration)
  END,
  'kling-v3', b.n, CASE WHEN ${u(6)} < $6 THEN 'https://hooks.client' || a.tenant || '.example.com/kling/webhook' END,
  c.upstream_id,
  CASE a.outcome ${OUTCOMES.map((o) => `WHEN ${text(o.name)} THEN ${text(o.message)}`).join(' ')} END,
  NULLIF(a.outcome, 'succeed'),
  CASE WHEN a.outcome <> 'succeed' THEN NULL
    WHEN a.kind = 'image-generation' THEN (SELECT jsonb_build_object('images', jsonb_agg(jsonb_build_object('index', j,
      'url', 'https://cdn.klingai.example/bs2/upload-kling-api/' || c.upstream_id || '/image/' || md5(c.upstream_id || j) || '.png') ORDER BY j))
      FROM generate_series(0, b.n - 1) j)
    ELSE jsonb_build_object('videos', jsonb_build_array(jsonb_build_object('id', md5(c.upstream_id)::uuid::text,
      'url', 'https://cdn.klingai.example/bs2/upload-kling-api/' || c.upstream_id || '/video/' || md5(c.upstream_id) || '.mp4',
      'duration', b.duration)))
  END,
  ${ms('b.submitted_at')},
  CASE a.outcome WHEN 'start_timeout' THEN ${ms('b.submitted_at')}
    WHEN 'total_timeout' THEN ${ms('b.submitted_at + (c.finished_at - b.submitted_at) * 0.15')}
    ELSE ${ms('CASE WHEN b.submitted_at IS NOT NULL THEN c.finished_at END')} END,
  CASE WHEN a.outcome IN ('canceled', 'queue_timeout') THEN 0 ELSE 1 END,
  CASE a.outcome ${OUTCOMES.map((o) => `WHEN ${text(o.name)} THEN ${o.steps.length}`).join(' ')} END,
  a.created_at, c.finished_at, b.submitted_at, c.finished_at
FROM generate_series(1, $2::int) AS g(i)
CROSS JOIN LATERAL (SELECT
  floor(cardinality($1::text[]) * power(${u(1)}, 2))::int AS tenant,
  ${shares(
    u(2),
    KINDS.map((k) => ({ upTo: k.upTo, value: text(k.id) })),
  )} AS kind,
  ${shares(
    u(3),
    OUTCOMES.map((o) => ({ upTo: o.upTo, value: text(o.name) })),
  )} AS outcome,
  $3::timestamp + ($4::timestamp - $3::timestamp) * sqrt(g.i::float8 / $2) AS created_at
  OFFSET 0) a
CROSS JOIN LATERAL (SELECT
  CASE a.kind WHEN 'image-generation' THEN ${pick([1, 1, 1, 1, 1, 1, 2, 2, 4], u(4))} ELSE 1 END AS n,
  repeat(${pick(PROMPTS, u(7))} || '. ', 1 + floor(${u(8)} * 3)::int) AS prompt,
  ${pick(['16:9', '16:9', '1:1', '9:16'], u(10))} AS aspect,
  ${pick(['5', '5', '5', '10'], u(11))} AS duration,
  CASE WHEN a.outcome IN (${reached('submitted')}) THEN a.created_at + ${seconds(`0.05 + 2 * ${u(12)}`)} END AS submitted_at
  OFFSET 0) b
CROSS JOIN LATERAL (SELECT
  CASE WHEN b.submitted_at IS NOT NULL THEN ${ms('b.submitted_at')}::text || lpad((g.i % 1000000)::text, 6, '0') END AS upstream_id,
  CASE a.outcome
    WHEN 'upstream_rejected' THEN a.created_at + ${seconds(`0.05 + 2 * ${u(12)}`)}
    WHEN 'canceled' THEN a.created_at + ${seconds(`1 + 300 * ${u(13)}`)}
    WHEN 'queue_timeout' THEN a.created_at + interval '1 hour' + ${seconds(`10 * ${u(13)}`)}
    WHEN 'start_timeout' THEN b.submitted_at + CASE a.kind WHEN 'image-generation' THEN interval '30 minutes' ELSE interval '1 hour' END
      + ${seconds(`10 * ${u(13)}`)}
    WHEN 'total_timeout' THEN a.created_at + CASE a.kind WHEN 'image-generation' THEN interval '3 hours' ELSE interval '6 hours' END
      + ${seconds(`10 * ${u(13)}`)}
    ELSE b.submitted_at + ${seconds(`CASE a.kind WHEN 'image-generation' THEN 8 + 40 * ${u(13)} ELSE 60 + 540 * ${u(13)} END`)}
  END AS finished_at
  OFFSET 0) c`;

/** What a change's event records: the upstream's answer or callback, or why we ended the task. */
const eventPayload = `CASE
  WHEN s.source = 'submit' AND s.to_state = 'submitted' THEN jsonb_build_object('task_id', t.upstream_task_id, 'task_status', 'submitted',
    'task_info', jsonb_build_object('external_task_id', t.id), 'created_at', t.upstream_created_at, 'updated_at', t.upstream_created_at)
  WHEN s.source = 'callback' THEN jsonb_build_object('task_id', t.upstream_task_id, 'task_status', s.to_state,
    'task_status_msg', CASE WHEN s.to_state = 'failed' THEN t.status_msg ELSE '' END,
    'task_info', jsonb_build_object('external_task_id', t.id), 'created_at', t.upstream_created_at, 'updated_at', ${ms('e.at')})
    || CASE WHEN s.to_state = 'succeed' THEN jsonb_build_object('task_result', t.result) ELSE '{}'::jsonb END
  WHEN s.source = 'api' AND s.to_state = 'queued' THEN NULL
  ELSE jsonb_build_object('reason', t.failure_reason, 'message', t.status_msg)
END`;

/** The events of the tasks of the tenants $2 created after $1 (the seed's own), one per change of its outcome. */
export const INSERT_EVENTS = `
INSERT INTO task_events (task_id, seq, from_state, to_state, source, payload, created_at)
SELECT t.id, s.seq, s.from_state::task_state, s.to_state::task_state, s.source, ${eventPayload}, e.at
FROM tasks t
JOIN ${STEPS} ON s.outcome = ${outcomeOf('t')}
CROSS JOIN LATERAL (SELECT ${reachedAt('t', 's.to_state')} AS at) e
WHERE t.created_at >= $1::timestamp AND t.tenant_id = ANY($2::text[])`;

const trackerState = `CASE
  WHEN NOT e.final THEN s.to_state
  WHEN t.failure_reason = 'canceled' THEN 'canceled'
  WHEN t.failure_reason LIKE '%_timeout' THEN 'timed_out'
  ELSE t.state::text END`;

/** The webhook body: the task object as a GET answered it at that change (src/tasks/task-view.ts). */
const deliveryBody = `jsonb_build_object(
  'task_id', t.id, 'task_status', s.to_state, 'task_status_msg', CASE WHEN e.final THEN coalesce(t.status_msg, '') ELSE '' END,
  'task_info', CASE WHEN t.external_task_id IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('external_task_id', t.external_task_id) END,
  'task_result', CASE WHEN e.final AND t.result IS NOT NULL THEN t.result
    WHEN t.kind = 'image-generation' THEN '{"images": []}'::jsonb ELSE '{"videos": []}'::jsonb END,
  'created_at', ${ms('t.created_at')}, 'updated_at', ${ms('e.at')},
  'tracker', jsonb_build_object('state', ${trackerState}, 'slots_held', CASE WHEN e.final THEN 0 ELSE t.slot_cost END,
    'next_poll_at', CASE WHEN e.final THEN NULL ELSE ${ms("e.at + interval '30 seconds'")} END,
    'failure_reason', CASE WHEN e.final THEN t.failure_reason END, 'upstream_task_id', t.upstream_task_id, 'model_name', t.model_name,
    'submit_attempts', t.submit_attempts, 'submitted_at', ${ms('t.submitted_at')},
    'finished_at', CASE WHEN e.final THEN ${ms('t.finished_at')} END)
    || CASE WHEN t.kind = 'image-generation' THEN jsonb_build_object('n', t.slot_cost) ELSE '{}'::jsonb END)::text`;

/** Seconds from a delivery's creation to its attempt n (WEBHOOK_RETRY_SCHEDULE_MS's default, summed). */
const ATTEMPT_OFFSETS_S = [0, 5, 305, 2105, 9305, 27305, 63305, 99305];
const deliveryDraw = (salt: number) => draw('hashtext(t.id)::bigint * 8 + s.seq', salt);

/**
 * The webhook deliveries of the tasks of the tenants $2 created after $1 that have a callback_url: one per change of
 * the status a client sees. Most are delivered at the first attempt, some after a few, a few dead
 * after the whole schedule.
 */
export const INSERT_DELIVERIES = `
INSERT INTO webhook_deliveries (id, task_id, tenant_id, seq, event_type, url, body, status, attempt_count, chain, next_attempt_at,
  last_error, created_at, updated_at, delivered_at)
SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), t.id, t.tenant_id, s.seq, s.event_type, t.callback_url, ${deliveryBody},
  (CASE WHEN a.n < ${ATTEMPT_OFFSETS_S.length} THEN 'delivered' ELSE 'dead' END)::delivery_status, a.n, 1, NULL,
  CASE WHEN a.n = ${ATTEMPT_OFFSETS_S.length} THEN 'HTTP 503' END, e.at, a.last_at,
  CASE WHEN a.n < ${ATTEMPT_OFFSETS_S.length} THEN a.last_at END
FROM tasks t
JOIN ${STEPS} ON s.outcome = ${outcomeOf('t')} AND s.event_type IS NOT NULL
CROSS JOIN LATERAL (SELECT ${reachedAt('t', 's.to_state')} AS at, s.to_state IN ('succeed', 'failed') AS final) e
CROSS JOIN LATERAL (SELECT ${shares(deliveryDraw(21), [
  { upTo: 0.985, value: '1' },
  { upTo: 0.995, value: `2 + floor(${deliveryDraw(22)} * 2)::int` },
  { upTo: 1, value: String(ATTEMPT_OFFSETS_S.length) },
])} AS n) k
CROSS JOIN LATERAL (SELECT k.n AS n,
  e.at + ${seconds(`(ARRAY[${ATTEMPT_OFFSETS_S.join(', ')}])[k.n] + 0.02 + 0.3 * ${deliveryDraw(23)}`)} AS last_at) a
WHERE t.created_at >= $1::timestamp AND t.tenant_id = ANY($2::text[]) AND t.callback_url IS NOT NULL`;

/** The attempts of the deliveries of the tenants $2 created after $1: the last one of a delivered delivery answered 200, the others failed. */
export const INSERT_ATTEMPTS = `
INSERT INTO webhook_attempts (delivery_id, chain, attempt, started_at, duration_ms, http_status, error, response_body)
SELECT d.id, 1, n, d.created_at + ${seconds(`(ARRAY[${ATTEMPT_OFFSETS_S.join(', ')}])[n]`)},
  20 + floor(300 * ${draw('hashtext(d.id)::bigint * 8 + n', 31)})::int,
  CASE WHEN n = d.attempt_count AND d.status = 'delivered' THEN 200 WHEN ${draw('hashtext(d.id)::bigint * 8 + n', 32)} < 0.7 THEN 503 END,
  CASE WHEN n = d.attempt_count AND d.status = 'delivered' THEN NULL
    WHEN ${draw('hashtext(d.id)::bigint * 8 + n', 32)} < 0.7 THEN NULL ELSE 'timeout after 10000 ms' END,
  NULL
FROM webhook_deliveries d
CROSS JOIN LATERAL generate_series(1, d.attempt_count) AS n
WHERE d.created_at >= $1::timestamp AND d.tenant_id = ANY($2::text[])`;

/** The Idempotency-Keys still remembered ($2 the share of tasks created with one, after $1: within IDEMPOTENCY_TTL_HOURS; $3 the tenants). */
export const INSERT_KEYS = `
INSERT INTO idempotency_keys (tenant_id, key, request_hash, task_id, created_at)
SELECT t.tenant_id, 'idem-' || t.id, encode(sha256(convert_to(t.id, 'UTF8')), 'hex'), t.id, t.created_at
FROM tasks t
WHERE t.created_at >= $1::timestamp AND t.tenant_id = ANY($3::text[]) AND ${draw('hashtext(t.id)::bigint', 41)} < $2`;

/**
 * Tasks canceled while queued, for filling the room at the end of old pages (history-seed.ts,
 * `fillOldPages`), into the session's `fill_batch` as well. Each is as small as a task row can be (a
 * one-letter prompt, no request id, no message), so that no room a create's row fits in is left: a
 * create always has a request id and a model name. $1 the tenant ids (drawn as in INSERT_TASKS), $2
 * and $3 the first and last row number (draws differ from batch to batch), $4 and $5 the first and
 * last created_at.
 */
export const FILL_TASKS = `
WITH t AS (
  INSERT INTO tasks (id, tenant_id, kind, pool, state, request, model_name, slot_cost, status_msg, failure_reason, submit_attempts,
    event_seq, created_at, updated_at, finished_at)
  SELECT gen_random_uuid()::text, ($1::text[])[floor(cardinality($1::text[]) * power(${u(51)}, 2))::int + 1], 'image-generation', 'image',
    'failed', jsonb_build_object('model_name', 'kling-v3', 'prompt', left(${pick(PROMPTS, u(52))}, 1)), 'kling-v3', 1,
    NULL, 'canceled', 0, 2, a.created_at, a.finished_at, a.finished_at
  FROM generate_series($2::int, $3::int) AS g(i)
  CROSS JOIN LATERAL (SELECT $4::timestamp + ($5::timestamp - $4::timestamp) * sqrt(${u(53)}) AS created_at OFFSET 0) c
  CROSS JOIN LATERAL (SELECT c.created_at, c.created_at + ${seconds(`1 + 300 * ${u(54)}`)} AS finished_at OFFSET 0) a
  RETURNING id, created_at, finished_at, (ctid::text::point)[0]::bigint AS page)
INSERT INTO fill_batch SELECT * FROM t`;

/**
 * The events of the tasks in `fill_batch`: seq $1, 1 (the change a create records, with no payload,
 * the smallest event there is) or 2 (its end, with a payload). The larger ones go first, then the
 * smallest fill what room is left. Returns how many went into a page before $2.
 */
export const FILL_EVENTS = `
WITH e AS (
  INSERT INTO task_events (task_id, seq, from_state, to_state, source, payload, created_at)
  SELECT f.id, $1::int, CASE WHEN $1 = 2 THEN 'queued'::task_state END, CASE WHEN $1 = 1 THEN 'queued' ELSE 'failed' END::task_state, 'api',
    CASE WHEN $1 = 2 THEN jsonb_build_object('reason', 'canceled', 'message', 'canceled by the client') END,
    CASE WHEN $1 = 1 THEN f.created_at ELSE f.finished_at END
  FROM fill_batch f
  RETURNING (ctid::text::point)[0]::bigint AS page)
SELECT count(*) FILTER (WHERE page < $2)::int AS in_old FROM e`;
