import type { Db, Prisma, Task, TaskState, WebhookDelivery as Delivery } from '../db/client';
import { isUniqueViolation, utc } from '../db/client';
import { RACED, retryOnRace } from '../lib/retry-on-race';
import { IdempotencyKeyTaken } from './idempotency';
import type { KindId, SlotPool } from '../kinds/kind';
import { kindOf } from '../kinds/registry';
import { withSaneTimes, type UpstreamTask } from '../kinds/upstream-task';
import type { Logger } from '../logger';
import { metrics } from '../observability/metrics';
import type { InlineDeliveries } from '../webhooks/delivery-attempt';
import { EVENT_TYPE, newDeliveryId } from '../webhooks/outbox';
import { patchAssignments, READ_TASK_COLUMNS, readTask, type ReadTask, type TaskPatch } from './task-rows';
import { canTransition, fromUpstreamStatus, isTerminal, toClientStatus } from './task-state';
import { toTaskObject } from './task-view';

/**
 * The task status machine. Every state change goes through this module, and every applied change
 * is recorded as a TaskEvent in the same statement.
 *
 * Concurrency: a change is guarded by the version of the row it was decided from (`xmin`), so it
 * applies only if nothing wrote the task since it was read. Two writers racing on one task
 * serialise on the row lock; the loser's guard no longer matches, it re-reads and decides again,
 * so no change is ever applied from a stale read.
 *
 * Outbox: a change of the status a client sees, on a task with a callback_url, writes its webhook
 * delivery in the same statement; `afterCommit` then asks for its sending. If that request is lost
 * (crash, Redis down) the sweep sends it: nothing between commit and enqueue can lose a webhook.
 */

/** What a committed change asks of the queues: send new webhooks, let waiting tasks take freed slots. */
export interface CommitEffects {
  /** The task that changed (waiters on it are woken). */
  taskId: string;
  deliveryIds: string[];
  /** Slots freed while tasks of the same pool were waiting for slots (0 when none was waiting). */
  slotsReleased: number;
  /** The pool of the task (whose waiting tasks may take the freed slots). */
  pool: SlotPool;
}

export interface TaskStore {
  db: Db;
  /** A submitted task with no upstream news for this long is polled (UPSTREAM_POLL_AFTER_MS). */
  pollAfterMs?: number;
  /** Sends first webhook attempts from this process (when absent, every delivery goes through the queue). */
  inline?: InlineDeliveries;
  /** Called after a change commits (best effort: the sweep covers anything it does not do). */
  afterCommit?: (effects: CommitEffects) => Promise<void>;
  /** Where alerts about what the upstream says go. */
  log?: Logger;
}

const DEFAULT_POLL_AFTER_MS = 30_000;

/** Bookkeeping every change implies: polling while at the upstream, no slots and no polls once ended. */
function lifecycleFields(store: TaskStore, to: TaskState, now: Date): TaskPatch {
  if (isTerminal(to)) return { slotsHeld: 0, nextPollAt: null };
  if (to === 'submitted' || to === 'processing') {
    return { nextPollAt: new Date(now.getTime() + (store.pollAfterMs ?? DEFAULT_POLL_AFTER_MS)), pollCount: 0 };
  }
  return {};
}

export type EventSource = 'api' | 'submit' | 'callback' | 'poll' | 'sweep';

export type ApplyOutcome =
  | { applied: true; task: ReadTask }
  | { applied: false; reason: 'missing' | 'unknown_status' | 'stale' | 'duplicate' | 'not_forward' | 'task_mismatch'; task?: Task };

interface Change {
  to: TaskState;
  data: TaskPatch;
  source: EventSource;
  payload?: unknown;
}

/**
 * Applies a change if the task is exactly as read; returns null when another writer got there
 * first. One statement: the update, its event and (when the client's status changes and it has a
 * callback_url) its webhook delivery, whose body is the task as this change leaves it.
 */
async function transition(store: TaskStore, task: ReadTask, change: Change): Promise<ReadTask | null> {
  const now = new Date();
  const patch: TaskPatch = { ...change.data, ...lifecycleFields(store, change.to, now) };
  const { version: _version, ...read } = task;
  const next: Task = { ...read, ...(patch as Partial<Task>), state: change.to, eventSeq: task.eventSeq + 1, updatedAt: now };

  const params: unknown[] = [task.id, task.version, change.to, utc(now)];
  const sets = patchAssignments(patch, params)
    .map((a) => `, ${a}`)
    .join('');
  const p = (v: unknown) => (params.push(v), `$${params.length}`);
  const payload = change.payload === undefined ? null : JSON.stringify(change.payload);
  let delivery = '';
  let deliveryCols = '';
  let created: Delivery | null = null;
  let inline = false;
  let after: Promise<string> | undefined;
  if (next.callbackUrl && toClientStatus(task.state) !== toClientStatus(change.to)) {
    const eventType = EVENT_TYPE[toClientStatus(change.to)];
    const body = JSON.stringify(toTaskObject(next));
    const d: Delivery = {
      id: newDeliveryId(),
      taskId: task.id,
      tenantId: task.tenantId,
      seq: next.eventSeq,
      eventType,
      url: next.callbackUrl,
      body,
      status: 'pending',
      attemptCount: 0,
      chain: 1,
      nextAttemptAt: now,
      lastError: null,
      createdAt: now,
      updatedAt: now,
      deliveredAt: null,
    };
    // Sent by this process right after the commit (or right after an earlier delivery of the task
    // that this process is sending) unless an earlier one is pending elsewhere (order) or too many
    // are in flight: then its first attempt is due at once, for the queue; otherwise it is leased
    // to this process (see InlineDeliveries).
    created = d;
    inline = store.inline?.reserve() ?? false;
    // An earlier delivery of the task being sent by this process: this one follows it (chained).
    after = inline ? store.inline!.sending(task.id) : undefined;
    const lease = () => `${p(utc(new Date(now.getTime() + store.inline!.leaseMs)))}::timestamp`;
    const due = !inline ? '$4::timestamp' : after ? lease() : `CASE WHEN b.behind THEN $4::timestamp ELSE ${lease()} END`;
    // Only an inline send needs to know about an earlier pending delivery and the tenant's secrets.
    const behind = inline
      ? `b AS (SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE task_id = $1 AND status = 'pending') AS behind),`
      : '';
    delivery = `, ${behind}
     d AS (
      INSERT INTO webhook_deliveries (id, task_id, tenant_id, seq, event_type, url, body, next_attempt_at, created_at, updated_at)
      SELECT ${p(d.id)}, id, tenant_id, event_seq, ${p(eventType)}, ${p(d.url)}, ${p(body)}, ${due}, $4::timestamp, $4::timestamp
      FROM t${inline ? ', b' : ''})`;
    if (inline) {
      deliveryCols = `, (SELECT behind FROM b) AS behind,
      (SELECT ARRAY[webhook_secret, webhook_secret_previous] FROM tenants WHERE id = t.tenant_id) AS secrets`;
    }
  }
  const releases = isTerminal(change.to) && task.slotsHeld > 0;
  // Whether anyone waits for the slots this frees: usually nobody, and then nothing more is asked.
  const waiters = releases ? slotWaitersExist(p(task.pool)) : 'false';
  let result: { rows: { waiters: boolean; version: string; behind?: boolean; secrets?: (string | null)[] }[] };
  try {
    result = await store.db.sql(
      `WITH t AS (
       UPDATE tasks SET state = $3::task_state, event_seq = event_seq + 1, updated_at = $4::timestamp${sets}
       WHERE id = $1 AND xmin = $2::xid RETURNING id, tenant_id, event_seq, xmin::text AS version),
     e AS (
       INSERT INTO task_events (task_id, seq, from_state, to_state, source, payload, created_at)
       SELECT id, event_seq, ${p(task.state)}::task_state, $3::task_state, ${p(change.source)}, ${p(payload)}::jsonb, $4::timestamp FROM t)${delivery}
     SELECT ${waiters} AS waiters, t.version${deliveryCols} FROM t`,
      params,
    );
  } catch (err) {
    if (inline) store.inline!.release();
    throw err;
  }
  const { rows } = result;
  if (inline && (rows.length !== 1 || (rows[0].behind && !after))) {
    store.inline!.release();
    inline = false;
  }
  if (rows.length !== 1) return null;
  if (isTerminal(change.to)) {
    metrics.tasksFinished.inc({ kind: next.kind, status: change.to, reason: next.failureReason ?? 'none' });
    metrics.taskDuration.observe({ kind: next.kind, status: change.to }, (now.getTime() - next.createdAt.getTime()) / 1000);
  }
  if (created && inline) {
    store.inline!.send(
      created,
      (rows[0].secrets ?? []).filter((x): x is string => !!x),
      after,
    );
  }
  const effects = {
    taskId: task.id,
    deliveryIds: created && !inline ? [created.id] : [],
    slotsReleased: rows[0].waiters ? task.slotsHeld : 0,
    pool: task.pool as SlotPool,
  };
  await store.afterCommit?.(effects).catch(() => undefined);
  return { ...next, version: rows[0].version };
}

/**
 * Whether any task waits for slots (read through the partial index `tasks_waiting_for_slots_idx`
 * once the table has statistics; see src/db/table-stats.ts).
 */
export const slotWaitersExist = (pool: string) =>
  `EXISTS (SELECT 1 FROM tasks WHERE pool = ${pool} AND slots_wait_since IS NOT NULL AND state = 'queued' AND slots_held = 0)`;

export const CANCELED_MESSAGE = 'canceled by the client';

/**
 * Applies what the upstream says about a task (callback, poll or submit answer). Never moves a task
 * backwards, never leaves a terminal state, ignores updates older than the newest one applied, and
 * treats repeats as harmless no-ops. `known` is the task if the caller has just read it.
 */
export async function applyUpstreamUpdate(
  store: TaskStore,
  taskId: string,
  update: UpstreamTask,
  source: EventSource,
  known?: ReadTask,
): Promise<ApplyOutcome> {
  const { db } = store;
  const target = fromUpstreamStatus(update.task_status);
  const sane = withSaneTimes(update);
  if (sane.ignored.length) {
    store.log?.warn({ task_id: taskId, source, ignored: sane.ignored }, 'ALERT: upstream timestamps outside 2020..now+1d ignored');
  }
  update = sane.task;
  let first = true;
  return retryOnRace(`task ${taskId}`, async (): Promise<ApplyOutcome | typeof RACED> => {
    const task = first && known ? known : await readTask(db, taskId);
    first = false;
    if (!task) return { applied: false, reason: 'missing' };
    if (task.upstreamTaskId && task.upstreamTaskId !== update.task_id) return { applied: false, reason: 'task_mismatch', task };
    if (!target) return { applied: false, reason: 'unknown_status', task };
    const at = update.updated_at ?? null;
    if (at !== null && task.upstreamUpdatedAt !== null && BigInt(Math.trunc(at)) < task.upstreamUpdatedAt) {
      return { applied: false, reason: 'stale', task };
    }
    if (!canTransition(task.state, target)) {
      // The upstream id may still be news (a callback can beat the submit answer to us).
      if (!task.upstreamTaskId) await adoptUpstreamId(db, task, update);
      return { applied: false, reason: task.state === target ? 'duplicate' : 'not_forward', task };
    }
    // A task to be ended (canceled, or timed out during its submission) fails once the upstream ends.
    const to = task.cancelRequestedAt && isTerminal(target) ? 'failed' : target;
    const updated = await transition(store, task, { to, data: upstreamFields(task, update, target), source, payload: update });
    return updated ? { applied: true, task: updated } : RACED;
  });
}

/** The kind's result in an upstream task object; one of another shape is no result (a callback refuses it before). */
function resultOf(task: Task, u: UpstreamTask): unknown {
  if (!u.task_result) return null;
  const kind = kindOf(task.kind);
  const parsed = kind.upstreamResult.safeParse(u.task_result);
  return parsed.success ? kind.readResult(parsed.data) : null;
}

function upstreamFields(task: Task, u: UpstreamTask, target: TaskState): TaskPatch {
  const now = new Date();
  const result = resultOf(task, u);
  const common: TaskPatch = {
    upstreamTaskId: task.upstreamTaskId ?? u.task_id,
    upstreamCreatedAt: u.created_at != null ? BigInt(Math.trunc(u.created_at)) : task.upstreamCreatedAt,
    upstreamUpdatedAt: u.updated_at != null ? BigInt(Math.trunc(u.updated_at)) : task.upstreamUpdatedAt,
    submittedAt: task.submittedAt ?? now,
  };
  // The task was to end while the upstream was working: its outcome is discarded.
  if (task.cancelRequestedAt && isTerminal(target)) return { ...common, ...requestedEnd(task), finishedAt: now };
  return {
    ...common,
    statusMsg: u.task_status_msg ?? task.statusMsg,
    ...(result ? { result } : {}),
    ...(target === 'failed' ? { failureReason: 'upstream_failed' } : {}),
    ...(isTerminal(target) ? { finishedAt: now } : {}),
  };
}

async function adoptUpstreamId(db: Db, task: Task, u: UpstreamTask): Promise<void> {
  await db.sql('UPDATE tasks SET upstream_task_id = $2, updated_at = $3::timestamp WHERE id = $1 AND upstream_task_id IS NULL', [
    task.id,
    u.task_id,
    utc(new Date()),
  ]);
}

/** The reason and message a task ends with once its requested end is carried out (older rows: a cancel). */
function requestedEnd(task: Task): { failureReason: string; statusMsg: string } {
  return { failureReason: task.cancelReason ?? 'canceled', statusMsg: task.cancelMessage ?? CANCELED_MESSAGE };
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

/**
 * Ends a task that has not ended yet as failed, with our own reason, now: for a caller that knows
 * no upstream task is left running for it. An end requested earlier (a cancel, a timeout) keeps its
 * own reason: it is why the task ends. Returns null if the task had already ended.
 */
export async function failTask(
  store: TaskStore,
  taskId: string,
  reason: string,
  message: string,
  source: EventSource,
): Promise<Task | null> {
  return retryOnRace(`task ${taskId}`, async () => {
    const task = await readTask(store.db, taskId);
    if (!task || isTerminal(task.state)) return null;
    return (
      (await endNow(store, task, task.cancelRequestedAt ? requestedEnd(task) : { failureReason: reason, statusMsg: message }, source)) ??
      RACED
    );
  });
}

/** Fails the task as read (guarded by its version): null when another writer got there first. */
function endNow(store: TaskStore, task: ReadTask, end: { failureReason: string; statusMsg: string }, source: EventSource) {
  return transition(store, task, {
    to: 'failed',
    data: { ...end, finishedAt: new Date() },
    source,
    payload: { reason: end.failureReason, message: end.statusMsg },
  });
}

/**
 * Carries out a requested end of a task still waiting for its submission, once the caller knows
 * that no upstream task exists for it (the upstream refused it, or a lookup found none). Null when
 * no end is requested or the task is no longer queued.
 */
export async function endIfRequested(store: TaskStore, taskId: string, source: EventSource): Promise<Task | null> {
  return retryOnRace(`task ${taskId}`, async () => {
    const task = await readTask(store.db, taskId);
    if (!task || task.state !== 'queued' || !task.cancelRequestedAt) return null;
    return (await endNow(store, task, requestedEnd(task), source)) ?? RACED;
  });
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
}

/** A new task as it is once recorded (the defaults of every column not given). */
export function newTaskRow(t: NewTask, createdAt: Date): Task {
  return {
    id: t.id,
    tenantId: t.tenantId,
    requestId: t.requestId ?? null,
    externalTaskId: t.externalTaskId ?? null,
    state: 'queued',
    request: t.request as Prisma.JsonValue,
    modelName: t.modelName,
    kind: t.kind,
    pool: t.pool,
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
  };
}

/**
 * Records accepted tasks and their first events in one statement (group commit of concurrent
 * creates). Each comes back as its row, or 'duplicate' when its external_task_id is already taken
 * by another task of its tenant (then nothing of it was written).
 */
export async function insertTasks(db: Db, tasks: { task: NewTask; at: Date }[]): Promise<(Task | 'duplicate')[]> {
  const col = <T>(f: (x: { task: NewTask; at: Date }) => T) => tasks.map(f);
  const { rows } = await db.sql<{ id: string }>(
    `WITH t AS (
       INSERT INTO tasks (id, request_id, tenant_id, external_task_id, request, model_name, kind, pool, slot_cost, callback_url,
                          callback_token, state, event_seq, created_at, updated_at)
       SELECT i.id, i.request_id, i.tenant_id, i.external_task_id, i.request, i.model_name, i.kind, i.pool, i.slot_cost, i.callback_url,
              i.callback_token, 'queued', 1, i.at, i.at
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[], $8::text[], $9::int[],
                   $10::text[], $11::text[], $12::timestamp[])
         AS i(id, request_id, tenant_id, external_task_id, request, model_name, kind, pool, slot_cost, callback_url, callback_token, at)
       ON CONFLICT (tenant_id, external_task_id) DO NOTHING
       RETURNING id, created_at),
     e AS (
       INSERT INTO task_events (task_id, seq, from_state, to_state, source, created_at) SELECT id, 1, NULL, 'queued', 'api', created_at FROM t)
     SELECT id FROM t`,
    [
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
    ],
  );
  const inserted = new Set(rows.map((r) => r.id));
  return tasks.map(({ task, at }) => (inserted.has(task.id) ? newTaskRow(task, at) : 'duplicate'));
}

/** Records an accepted task and its first event together; a duplicate external_task_id raises P2002. */
export async function insertTask(db: Db, t: NewTask, idempotency?: { key: string; requestHash: string; ttlMs: number }): Promise<Task> {
  const data: Prisma.TaskUncheckedCreateInput = {
    id: t.id,
    requestId: t.requestId ?? null,
    tenantId: t.tenantId,
    externalTaskId: t.externalTaskId ?? null,
    request: t.request as Prisma.InputJsonValue,
    modelName: t.modelName,
    kind: t.kind,
    pool: t.pool,
    slotCost: t.slotCost,
    callbackUrl: t.callbackUrl ?? null,
    callbackToken: t.callbackToken ?? null,
    state: 'queued',
    eventSeq: 1,
    events: { create: { seq: 1, fromState: null, toState: 'queued', source: 'api' } },
  };
  if (!idempotency) return db.task.create({ data });
  // Task and key commit together: a racing duplicate blocks on the key's primary key until this
  // commits, then fails and rolls back its own task (a database constraint, not read-then-write).
  return db.$transaction(async (tx) => {
    const { key, requestHash, ttlMs } = idempotency;
    await tx.idempotencyKey.deleteMany({ where: { tenantId: t.tenantId, key, createdAt: { lt: new Date(Date.now() - ttlMs) } } });
    const task = await tx.task.create({ data });
    try {
      await tx.idempotencyKey.create({ data: { tenantId: t.tenantId, key, requestHash, taskId: task.id } });
    } catch (err) {
      if (isUniqueViolation(err)) throw new IdempotencyKeyTaken();
      throw err;
    }
    return task;
  });
}

/** Why and how a task is to end from our side (a client's cancel, a stage limit). */
export interface EndRequest {
  /** The failure_reason it ends with (canceled, queue_timeout, ...). */
  reason: string;
  /** The task_status_msg it ends with. */
  message: string;
  source: EventSource;
  /**
   * A task already at the upstream: `track` keeps it until the upstream ends it (a client's cancel:
   * Kling has no cancel), `end` ends it now (a limit on the upstream's own stage).
   */
  atUpstream: 'track' | 'end';
}

/** `ended`: failed now; `ending`: to fail once its upstream task ends; `finished`: had ended already. */
export type EndOutcome = { result: 'ended' | 'ending' | 'finished'; task: Task };

/**
 * Ends a task from our side. A task whose submission may have reached the upstream (queued with an
 * attempt made: the call is in flight, or failed in a way that may hide a created task) is never
 * ended here, whatever `atUpstream` says: the end is recorded, and the submission carries it out
 * once its outcome is known. An upstream task it created is tracked to its end, keeping its slots
 * (the upstream counts them), and its result is discarded; with none, the task ends then. Null for
 * a missing task.
 */
export async function requestEnd(store: TaskStore, taskId: string, end: EndRequest): Promise<EndOutcome | null> {
  return retryOnRace(`task ${taskId}`, async (): Promise<EndOutcome | null | typeof RACED> => {
    const task = await readTask(store.db, taskId);
    if (!task) return null;
    if (isTerminal(task.state)) return { result: 'finished', task };
    const submissionStarted = task.state !== 'queued' || task.submitAttempts > 0;
    const atUpstream = task.state !== 'queued';
    if (!submissionStarted || (atUpstream && end.atUpstream === 'end')) {
      const requested = task.cancelRequestedAt ? requestedEnd(task) : { failureReason: end.reason, statusMsg: end.message };
      const ended = await endNow(store, task, requested, end.source);
      return ended ? { result: 'ended', task: ended } : RACED;
    }
    if (task.cancelRequestedAt) return { result: 'ending', task };
    // Guarded by the version read: a submission answer or a claim in between is seen on the re-read.
    const { rows } = await store.db.sql<ReadTask>(
      `UPDATE tasks SET cancel_requested_at = $3::timestamp, cancel_reason = $4, cancel_message = $5, updated_at = $3::timestamp
       WHERE id = $1 AND xmin = $2::xid RETURNING ${READ_TASK_COLUMNS}`,
      [task.id, task.version, utc(new Date()), end.reason, end.message],
    );
    return rows[0] ? { result: 'ending', task: rows[0] } : RACED;
  });
}

/**
 * A client's cancel. Not yet submitted: the task ends now (failed, "canceled by the client"). At
 * the upstream or on its way there: it is to end once the upstream task ends (see requestEnd).
 */
export async function cancelTask(store: TaskStore, taskId: string): Promise<EndOutcome> {
  const outcome = await requestEnd(store, taskId, { reason: 'canceled', message: CANCELED_MESSAGE, source: 'api', atUpstream: 'track' });
  if (!outcome) throw new Error(`task ${taskId}: not found`);
  return outcome;
}
