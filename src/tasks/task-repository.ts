import type { Db, Prisma, Task } from '../db/client';
import { TaskState, utc } from '../db/client';
import { selectColumns } from '../db/columns';
import type { KindId, SlotPool, TaskKind } from '../kinds/kind';
import { AppError } from '../errors';
import { isTerminal } from './task-state';

/**
 * The task repository: the statements on `tasks` the lifecycle runs, and the one column map they
 * share. Raw SQL for those every task runs (read, status change, create): Prisma's per-call CPU
 * would be most of their cost. Rows come back with Prisma's field names and types, so the rest of
 * the code sees the same `Task` either way. (Slot claims and due polls, whose SQL is their whole
 * point, live with their concept: task-slots.ts, task-polling.ts.)
 */
/** The select list of a task's columns under Prisma's field names; `of` qualifies them (e.g. a composite's `(c.task).`). */
export const taskColumns = (of = '') => selectColumns('tasks', of);

export const TASK_COLUMNS = taskColumns();

/**
 * A task as read, with the row version it was read at (Postgres's `xmin`: it changes with every
 * write of the row). A change guarded by it applies only to exactly the row that was read.
 */
export type ReadTask = Task & { version: string };

/** The columns of a ReadTask (for SELECT and RETURNING). */
export const READ_TASK_COLUMNS = `${TASK_COLUMNS}, xmin::text AS version`;

/** A ReadTask's columns but the request body, which reads as null. */
const STATE_COLUMNS = READ_TASK_COLUMNS.replace('request AS "request"', 'NULL::jsonb AS "request"');

/**
 * A task for a status change: everything but its request body, which no status change reads and
 * which can be megabytes (a base64 reference image); only the submission needs it (from its claim).
 */
export async function readTask(db: Db, id: string): Promise<ReadTask | null> {
  const { rows } = await db.sql<ReadTask>(`SELECT ${STATE_COLUMNS} FROM tasks WHERE id = $1`, [id]);
  return rows[0] ?? null;
}

/** The task fields a status change may set (beside state, event_seq and updated_at). */
export interface TaskPatch {
  upstreamTaskId?: string | null;
  statusMsg?: string | null;
  failureReason?: string | null;
  result?: unknown;
  upstreamCreatedAt?: bigint | null;
  upstreamUpdatedAt?: bigint | null;
  slotsHeld?: number;
  nextPollAt?: Date | null;
  pollCount?: number;
  submittedAt?: Date | null;
  finishedAt?: Date | null;
  storingSince?: Date | null;
  filesState?: string | null;
  files?: unknown;
}

const PATCH_COLUMNS: Record<keyof TaskPatch, [column: string, cast: string]> = {
  upstreamTaskId: ['upstream_task_id', 'text'],
  statusMsg: ['status_msg', 'text'],
  failureReason: ['failure_reason', 'text'],
  result: ['result', 'jsonb'],
  upstreamCreatedAt: ['upstream_created_at', 'bigint'],
  upstreamUpdatedAt: ['upstream_updated_at', 'bigint'],
  slotsHeld: ['slots_held', 'int'],
  nextPollAt: ['next_poll_at', 'timestamp'],
  pollCount: ['poll_count', 'int'],
  submittedAt: ['submitted_at', 'timestamp'],
  finishedAt: ['finished_at', 'timestamp'],
  storingSince: ['storing_since', 'timestamp'],
  filesState: ['files_state', 'text'],
  files: ['files', 'jsonb'],
};

function sqlValue(key: keyof TaskPatch, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return utc(v);
  if (typeof v === 'bigint') return v.toString();
  return key === 'result' || key === 'files' ? JSON.stringify(v) : v;
}

/** `col = $n::type, ...` for the patch's fields, appending their values to `params`. */
export function patchAssignments(patch: TaskPatch, params: unknown[]): string[] {
  const out: string[] = [];
  for (const key of Object.keys(patch) as (keyof TaskPatch)[]) {
    if (patch[key] === undefined) continue;
    const [column, cast] = PATCH_COLUMNS[key];
    params.push(sqlValue(key, patch[key]));
    out.push(`${column} = $${params.length}::${cast}`);
  }
  return out;
}

export interface NewTask {
  id: string;
  /** The create call's request_id (logs of the task carry it). */
  requestId?: string;
  tenantId: string;
  externalTaskId?: string;
  request: Record<string, unknown>;
  modelName: string;
  kind: KindId;
  pool: SlotPool;
  slotCost: number;
  callbackUrl?: string;
  /** Only for tasks made as they were before callback tokens were derived (tests of that path). */
  callbackToken?: string;
  /** When the durable copies of its results are deleted (the tenant's retention); absent: never. */
  resultsExpireAt?: Date;
}

/** An Idempotency-Key recorded with its task, in the same statement. */
export interface NewKey {
  key: string;
  requestHash: string;
}

/** A new task as it is once recorded (the defaults of every column not given). */
export function newTaskRow(t: NewTask, createdAt: Date): Task {
  return {
    id: t.id,
    tenantId: t.tenantId,
    requestId: t.requestId ?? null,
    externalTaskId: t.externalTaskId ?? null,
    kind: t.kind,
    pool: t.pool,
    state: 'queued',
    request: t.request as Prisma.JsonValue,
    modelName: t.modelName,
    slotCost: t.slotCost,
    callbackUrl: t.callbackUrl ?? null,
    callbackToken: t.callbackToken ?? null,
    upstreamTaskId: null,
    statusMsg: null,
    failureReason: null,
    result: null,
    upstreamCreatedAt: null,
    upstreamUpdatedAt: null,
    submitAttempts: 0,
    slotsHeld: 0,
    slotsWaitSince: null,
    accountId: null,
    nextPollAt: null,
    pollCount: 0,
    cancelRequestedAt: null,
    cancelReason: null,
    cancelMessage: null,
    eventSeq: 1,
    createdAt,
    updatedAt: createdAt,
    submittedAt: null,
    finishedAt: null,
    resultsExpireAt: t.resultsExpireAt ?? null,
    filesState: null,
    files: null,
    storingSince: null,
    copyHeldUntil: null,
    filesExpiredAt: null,
  };
}

/** What became of one task of an insert: its row; or nothing written because its external_task_id or its Idempotency-Key was taken. */
export type Inserted = Task | 'duplicate' | 'key_taken';

/**
 * Records accepted tasks, their first events and their Idempotency-Keys in one statement (group
 * commit of concurrent creates). A key is written only with its task, and a task with a key only
 * with that key: a racing duplicate waits on the key's primary key until the first commits, then
 * writes nothing of its own (a database constraint, not read-then-write). An expired key is taken
 * over. A task whose external_task_id is taken writes nothing either; that is looked up only for
 * the tasks not written (to tell a taken id from a taken key), so an accepted task costs no lookup.
 * A batch without keys (the usual one) takes a simpler statement of the same effect.
 */
export async function insertTasks(
  db: Db,
  items: { task: NewTask; at: Date; key?: NewKey }[],
  /** Keys recorded before this are forgotten: a new request may take them over (IDEMPOTENCY_TTL_HOURS). */
  keysExpireBefore: Date = new Date(0),
): Promise<Inserted[]> {
  const col = <T>(f: (x: (typeof items)[number]) => T) => items.map(f);
  const tasks = [
    col((x) => x.task.id),
    col((x) => x.task.requestId ?? null),
    col((x) => x.task.tenantId),
    col((x) => x.task.externalTaskId ?? null),
    col((x) => JSON.stringify(x.task.request)),
    col((x) => x.task.modelName),
    col((x) => x.task.kind),
    col((x) => x.task.pool),
    col((x) => x.task.slotCost),
    col((x) => x.task.callbackUrl ?? null),
    col((x) => x.task.callbackToken ?? null),
    col((x) => utc(x.at)),
    col((x) => (x.task.resultsExpireAt ? utc(x.task.resultsExpireAt) : null)),
  ];
  const keyed = items.some((x) => x.key);
  const { rows } = await db.sql<{ id: string; inserted: boolean; keyed: boolean; external_taken: boolean }>(
    keyed ? INSERT_WITH_KEYS : INSERT_WITHOUT_KEYS,
    keyed ? [...tasks, col((x) => x.key?.key ?? null), col((x) => x.key?.requestHash ?? null), utc(keysExpireBefore)] : tasks,
  );
  const byId = new Map(rows.map((r) => [r.id, r]));
  return items.map(({ task, at, key }) => {
    const r = byId.get(task.id);
    if (r?.inserted) return newTaskRow(task, at);
    return key && !r?.keyed && !r?.external_taken ? 'key_taken' : 'duplicate';
  });
}

/**
 * Counts a submission attempt BEFORE the HTTP call, so a crash mid-call is visible to the retry.
 * Returns the task as this leaves it (the upstream's answer is usually the next change), or
 * undefined when the task is to end instead (an end was requested while an earlier attempt's
 * outcome was unknown: no new upstream task may be made for it).
 */
export async function recordSubmitAttempt(db: Db, taskId: string): Promise<ReadTask | undefined> {
  const { rows } = await db.sql<ReadTask>(
    `UPDATE tasks SET submit_attempts = submit_attempts + 1, updated_at = $2::timestamp WHERE id = $1 AND cancel_requested_at IS NULL
     RETURNING ${READ_TASK_COLUMNS}`,
    [taskId, utc(new Date())],
  );
  return rows[0];
}

/** Records the upstream's id of a task that has none yet (a callback can beat the submit answer to us). */
export async function adoptUpstreamId(db: Db, taskId: string, upstreamTaskId: string): Promise<void> {
  await db.sql('UPDATE tasks SET upstream_task_id = $2, updated_at = $3::timestamp WHERE id = $1 AND upstream_task_id IS NULL', [
    taskId,
    upstreamTaskId,
    utc(new Date()),
  ]);
}

/** Records that the task, exactly as read, is to end (why, and with what message); null when it changed since. */
export async function markEndRequested(db: Db, task: ReadTask, reason: string, message: string): Promise<ReadTask | null> {
  const { rows } = await db.sql<ReadTask>(
    `UPDATE tasks SET cancel_requested_at = $3::timestamp, cancel_reason = $4, cancel_message = $5, updated_at = $3::timestamp
     WHERE id = $1 AND xmin = $2::xid RETURNING ${READ_TASK_COLUMNS}`,
    [task.id, task.version, utc(new Date()), reason, message],
  );
  return rows[0] ?? null;
}

/**
 * A tenant's task of a kind by this service's task_id, or else by the tenant's own
 * external_task_id. Another tenant's task, or a task of another kind (Kling: a video task under the
 * image path), is indistinguishable from a missing one.
 */
export async function findTask(db: Db, tenantId: string, kind: TaskKind, id: string): Promise<Task> {
  const task =
    (await db.task.findFirst({ where: { id, tenantId, kind: kind.id } })) ??
    (await db.task.findFirst({ where: { tenantId, kind: kind.id, externalTaskId: id } }));
  if (!task) throw new AppError('not_found', `task not found: ${id.slice(0, 100)}`);
  return task;
}

/**
 * A page of a tenant's tasks of a kind, newest first. Kling pages by number, so page n skips the
 * (n - 1) * pageSize newer tasks: those are skipped in the index (tenant_id, kind, created_at, id)
 * alone (an index-only scan where a vacuum has marked the table's pages all-visible, as it has for
 * the kept history) and only the page's own rows are read from the table, instead of a table row
 * for every task skipped. The first page skips nothing and reads its rows through the same index.
 */
export async function listTasks(db: Db, tenantId: string, kind: TaskKind, pageNum: number, pageSize: number): Promise<Task[]> {
  const skip = (pageNum - 1) * pageSize;
  const { rows } =
    skip === 0
      ? await db.sql<Task>(LIST_FIRST_PAGE, [tenantId, kind.id, pageSize])
      : await db.sql<Task>(LIST_LATER_PAGE, [tenantId, kind.id, skip, pageSize]);
  return rows;
}

const NEWEST_FIRST = 'ORDER BY created_at DESC, id DESC';
const LIST_FIRST_PAGE = `SELECT ${TASK_COLUMNS} FROM tasks WHERE tenant_id = $1 AND kind = $2 ${NEWEST_FIRST} LIMIT $3`;
export const LIST_LATER_PAGE = `SELECT ${TASK_COLUMNS} FROM tasks WHERE id IN (
  SELECT id FROM tasks WHERE tenant_id = $1 AND kind = $2 ${NEWEST_FIRST} OFFSET $3 LIMIT $4) ${NEWEST_FIRST}`;

/** A tenant's tasks that have not ended, up to `atMost` (through the partial index `tasks_unfinished_idx`). */
export async function countUnfinished(db: Db, tenantId: string, atMost: number): Promise<number> {
  const { rows } = await db.sql<{ n: number }>(UNFINISHED_COUNT, [tenantId, atMost]);
  return rows[0].n;
}

export const UNFINISHED_COUNT = `SELECT count(*)::int AS n FROM (
  SELECT 1 FROM tasks WHERE tenant_id = $1 AND state IN ('queued', 'submitted', 'processing') LIMIT $2) s`;

/**
 * Every task kept, by kind, state and failure reason ('' for none), in one snapshot. The finished
 * ones from `task_counts`, which triggers on tasks keep exact (a few hundred rows to add up however
 * long the history); the unfinished ones, the work in flight, counted now through the state index.
 */
export async function countTasks(db: Db): Promise<TaskCount[]> {
  const { rows } = await db.sql<TaskCount>(TASK_COUNTS);
  return rows;
}

/**
 * The states `task_counts` does not keep, from the life cycle (a state added to it is counted here
 * at once), named one by one: `state NOT IN (...)` would not be an index condition.
 */
const UNFINISHED_STATES = Object.values(TaskState)
  .filter((state) => !isTerminal(state))
  .map((state) => `'${state}'`)
  .join(', ');

const TASK_COUNTS = `SELECT kind, state::text AS state, reason, sum(n)::float8 AS n FROM task_counts
  WHERE state IN ('succeed', 'failed') GROUP BY kind, state, reason HAVING sum(n) <> 0
  UNION ALL
  SELECT kind, state::text, coalesce(failure_reason, ''), count(*)::float8 FROM tasks
  WHERE state IN (${UNFINISHED_STATES}) GROUP BY 1, 2, 3`;

export interface TaskCount {
  kind: string;
  state: TaskState;
  reason: string;
  n: number;
}

const NEW_TASKS = `unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[], $8::text[], $9::int[],
                       $10::text[], $11::text[], $12::timestamp[], $13::timestamp[]`;
const NEW_TASK_FIELDS = `id, request_id, tenant_id, external_task_id, request, model_name, kind, pool, slot_cost, callback_url, callback_token, at,
                         results_expire_at`;
const INSERT_TASK_COLUMNS = `INSERT INTO tasks (id, request_id, tenant_id, external_task_id, request, model_name, kind, pool, slot_cost, callback_url,
                          callback_token, state, event_seq, created_at, updated_at, results_expire_at)`;
const NEW_TASK_VALUES = `i.id, i.request_id, i.tenant_id, i.external_task_id, i.request, i.model_name, i.kind, i.pool, i.slot_cost, i.callback_url,
           i.callback_token, 'queued', 1, i.at, i.at, i.results_expire_at`;
const INSERT_FIRST_EVENTS = `INSERT INTO task_events (task_id, seq, from_state, to_state, source, created_at) SELECT id, 1, NULL, 'queued', 'api', created_at FROM t`;

/** The common case, a batch without Idempotency-Keys: no key to write, no row of the batch to look at twice. */
const INSERT_WITHOUT_KEYS = `WITH t AS (
    ${INSERT_TASK_COLUMNS}
    SELECT ${NEW_TASK_VALUES}
    FROM ${NEW_TASKS}) AS i(${NEW_TASK_FIELDS})
    ON CONFLICT (tenant_id, external_task_id) WHERE external_task_id IS NOT NULL DO NOTHING
    RETURNING id, created_at),
  e AS (${INSERT_FIRST_EVENTS})
  SELECT id, true AS inserted, false AS keyed, false AS external_taken FROM t`;

const INSERT_WITH_KEYS = `WITH i AS (
       SELECT * FROM ${NEW_TASKS}, $14::text[], $15::text[]) AS i(${NEW_TASK_FIELDS}, idem_key, idem_hash)),
     k AS (
       INSERT INTO idempotency_keys AS x (tenant_id, key, request_hash, task_id, created_at)
       SELECT DISTINCT ON (i.tenant_id, i.idem_key) i.tenant_id, i.idem_key, i.idem_hash, i.id, i.at FROM i
       WHERE i.idem_key IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM tasks o WHERE o.tenant_id = i.tenant_id AND o.external_task_id = i.external_task_id)
       ORDER BY i.tenant_id, i.idem_key, i.at
       ON CONFLICT (tenant_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, task_id = EXCLUDED.task_id, created_at = EXCLUDED.created_at
         WHERE x.created_at < $16::timestamp
       RETURNING task_id),
     t AS (
       ${INSERT_TASK_COLUMNS}
       SELECT ${NEW_TASK_VALUES}
       FROM i WHERE i.idem_key IS NULL OR i.id IN (SELECT task_id FROM k)
       ON CONFLICT (tenant_id, external_task_id) WHERE external_task_id IS NOT NULL DO NOTHING
       RETURNING id, created_at),
     e AS (${INSERT_FIRST_EVENTS})
     SELECT i.id, t.id IS NOT NULL AS inserted, k.task_id IS NOT NULL AS keyed,
       CASE WHEN t.id IS NULL
         THEN EXISTS (SELECT 1 FROM tasks o WHERE o.tenant_id = i.tenant_id AND o.external_task_id = i.external_task_id)
         ELSE false END AS external_taken
     FROM i LEFT JOIN t ON t.id = i.id LEFT JOIN k ON k.task_id = i.id`;

/** Records one task (and its key) alone, as the create path does in a batch; throws if it was not written. */
export async function insertTask(db: Db, task: NewTask, key?: NewKey, keysExpireBefore?: Date): Promise<Task> {
  const [inserted] = await insertTasks(db, [{ task, at: new Date(), key }], keysExpireBefore);
  if (typeof inserted === 'string') throw new Error(`task ${task.id} not inserted: ${inserted}`);
  return inserted;
}
