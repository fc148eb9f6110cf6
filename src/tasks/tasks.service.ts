import { randomUUID } from 'node:crypto';
import type { Db, Task, Tenant } from '../db/client';
import { isUniqueViolation } from '../db/client';
import { AppError, invalidParameter } from '../errors';
import type { Logger } from '../logger';
import { groupCommit } from '../lib/group-commit';
import { enqueueSubmits, type Queues } from '../queues/queues';
import { metrics } from '../observability/metrics';
import { checkPublicUrl } from '../webhooks/ssrf';
import type { WatcherLimit } from '../http/watcher-limit';
import type { ModelFamily, TaskKind } from '../kinds/kind';
import { IdempotencyKeyTaken, requestHash } from './idempotency';
import type { TaskChanges } from './task-changes';
import { insertTask, insertTasks, type NewTask, type TaskStore } from './task-transitions';

export interface TasksDeps {
  db: Db;
  store: TaskStore;
  queues: Queues;
  log: Logger;
  /** The model_name values each family of kinds accepts (KLING_MODELS, KLING_VIDEO_MODELS); the first is the default. */
  models: Readonly<Record<ModelFamily, readonly string[]>>;
  allowPrivateWebhooks: boolean;
  /** How long an Idempotency-Key is remembered (IDEMPOTENCY_TTL_HOURS), in ms. */
  idempotencyTtlMs: number;
  maxUnfinishedTasks: number;
  changes: TaskChanges;
  /** Long polls plus event streams one tenant holds open in this process, all kinds together (MAX_WATCHERS_PER_TENANT). */
  watchers: WatcherLimit;
  /** An event stream still open after this long is ended; the client reconnects (SSE_MAX_SECONDS). */
  sseMaxSeconds: number;
  /** Aborted when the process stops: long polls answer at once and event streams end (clients reconnect elsewhere). */
  stopping: AbortSignal;
}

/** What the create path needs. */
export type CreateDeps = Pick<
  TasksDeps,
  'db' | 'queues' | 'log' | 'models' | 'allowPrivateWebhooks' | 'idempotencyTtlMs' | 'maxUnfinishedTasks'
>;

export interface CreateOptions {
  idempotencyKey?: string;
  requestId?: string;
}

export interface Created {
  task: Task;
  /** True when an earlier request with the same Idempotency-Key and body created the task. */
  replayed: boolean;
}

/** Creates written together at most (one statement, one commit). */
const MAX_INSERT_BATCH = 100;
/** How long a tenant's count of unfinished tasks is trusted before it is read again. */
const UNFINISHED_RECOUNT_MS = 1000;

export type CreateTask = (tenant: Tenant, kind: TaskKind, body: unknown, opts?: CreateOptions) => Promise<Created>;

/**
 * The create path of one API process. Concurrent creates share one INSERT statement and one
 * BullMQ round trip (group commit: src/lib/group-commit.ts); each answer still comes only after its
 * own row has committed.
 */
export function createTaskCreator(deps: CreateDeps): CreateTask {
  const insert = groupCommit(async (items: { task: NewTask; at: Date }[]) => {
    try {
      return await insertTasks(deps.db, items);
    } catch (err) {
      if (items.length === 1) throw err;
      // One bad row must not fail the others: write them one by one, each with its own outcome.
      return Promise.all(
        items.map((item) =>
          insertTasks(deps.db, [item]).then(
            ([r]) => r,
            (e: unknown) => asError(e),
          ),
        ),
      );
    }
  }, MAX_INSERT_BATCH);
  const enqueue = groupCommit(async (taskIds: string[]) => {
    const ok = await enqueueSubmits(deps.queues, taskIds);
    return taskIds.map(() => ok);
  }, MAX_INSERT_BATCH);
  const unfinished = unfinishedCounter(deps);

  return async (tenant, kind, body, opts = {}) => {
    const result = kind.validate(body, deps.models[kind.models]);
    if (!result.ok) throw invalidParameter(result.message);
    // The client's callback_url and external_task_id are ours to honour, never the upstream's.
    const { callback_url, external_task_id, ...request } = result.value;
    const key = opts.idempotencyKey;
    // The request as validated and as it will run: spelling a default out, key order, spacing and
    // the URL's casing make no difference.
    const hash = key ? requestHash({ ...kind.upstreamDefaults, ...result.value }) : '';
    const idempotency = key ? { key, kind: kind.id, requestHash: hash, ttlMs: deps.idempotencyTtlMs, rawBody: body } : undefined;
    // A retry of a request already accepted gets its task, whatever the limits (or DNS) say now.
    if (idempotency) {
      const earlier = await replay(deps.db, tenant.id, idempotency);
      if (earlier) return { task: earlier, replayed: true };
    }
    if (callback_url && !deps.allowPrivateWebhooks) {
      const problem = await checkPublicUrl(callback_url);
      if (problem) throw invalidParameter(`callback_url: ${problem}`);
    }
    await unfinished.check(tenant.id);
    const newTask: NewTask = {
      id: randomUUID(),
      requestId: opts.requestId,
      tenantId: tenant.id,
      externalTaskId: external_task_id,
      request,
      modelName: request.model_name,
      kind: kind.id,
      pool: kind.pool,
      slotCost: kind.slotCost(result.value),
      callbackUrl: callback_url,
    };
    let task: Task;
    try {
      if (idempotency) task = await insertTask(deps.db, newTask, idempotency);
      else {
        const inserted = await insert({ task: newTask, at: new Date() });
        if (inserted === 'duplicate') throw duplicateExternalId();
        task = inserted;
      }
    } catch (err) {
      if (err instanceof IdempotencyKeyTaken) {
        const winner = await replay(deps.db, tenant.id, idempotency!);
        if (!winner) throw new AppError('conflict', 'Idempotency-Key: a request with this key is being processed; retry');
        return { task: winner, replayed: true };
      }
      if (isUniqueViolation(err)) throw duplicateExternalId();
      throw err;
    }
    unfinished.added(tenant.id);
    metrics.tasksCreated.inc({ kind: kind.id });
    if (!(await enqueue(task.id))) deps.log.warn({ task_id: task.id }, 'could not enqueue submission now; the sweep will pick the task up');
    return { task, replayed: false };
  };
}

const duplicateExternalId = () => invalidParameter('external_task_id: is already used by another task of yours');
const asError = (e: unknown) => (e instanceof Error ? e : new Error(String(e)));

/** A tenant's tasks that have not ended, up to $2 (through the partial index `tasks_unfinished_idx`). */
export const UNFINISHED_COUNT = `SELECT count(*)::int AS n FROM (
  SELECT 1 FROM tasks WHERE tenant_id = $1 AND state IN ('queued', 'submitted', 'processing') LIMIT $2) s`;

/**
 * The per-tenant cap on unfinished tasks, without a count per create: a count is reused for a
 * second (plus this process's own creates), and read afresh before any refusal, so a refusal
 * always reflects the database. Soft: concurrent creates in other processes may pass it by a few.
 */
function unfinishedCounter(deps: CreateDeps) {
  const counts = new Map<string, { n: number; at: number }>();
  const recount = async (tenantId: string) => {
    const { rows } = await deps.db.sql<{ n: number }>(UNFINISHED_COUNT, [tenantId, deps.maxUnfinishedTasks]);
    if (counts.size >= 10_000) counts.clear();
    counts.set(tenantId, { n: rows[0].n, at: Date.now() });
    return rows[0].n;
  };
  return {
    async check(tenantId: string) {
      const known = counts.get(tenantId);
      const fresh = known && Date.now() - known.at < UNFINISHED_RECOUNT_MS;
      let n = fresh ? known.n : await recount(tenantId);
      if (n >= deps.maxUnfinishedTasks && fresh) n = await recount(tenantId);
      if (n >= deps.maxUnfinishedTasks) {
        throw new AppError('rate_limited', `too many unfinished tasks (limit ${deps.maxUnfinishedTasks}); retry when some have finished`, {
          'retry-after': '10',
        });
      }
    },
    added(tenantId: string) {
      const known = counts.get(tenantId);
      if (known) known.n++;
    },
  };
}

/**
 * The task an earlier request with this key created (null when the key is unused or forgotten);
 * refused when that request had another body. Keys stored while the hash covered the raw body
 * still match a retry of that same body.
 */
async function replay(
  db: Db,
  tenantId: string,
  idem: { key: string; kind: string; requestHash: string; ttlMs: number; rawBody: unknown },
): Promise<Task | null> {
  const row = await db.idempotencyKey.findUnique({ where: { tenantId_key: { tenantId, key: idem.key } }, include: { task: true } });
  if (!row || row.createdAt.getTime() < Date.now() - idem.ttlMs) return null;
  const sameRequest = row.requestHash === idem.requestHash || row.requestHash === requestHash(idem.rawBody);
  if (row.task.kind !== idem.kind || !sameRequest) {
    throw new AppError('conflict', 'Idempotency-Key: was already used with a different request body; use a new key for a new request');
  }
  return row.task;
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

export async function listTasks(db: Db, tenantId: string, kind: TaskKind, pageNum: number, pageSize: number): Promise<Task[]> {
  return db.task.findMany({
    where: { tenantId, kind: kind.id },
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
    skip: (pageNum - 1) * pageSize,
    take: pageSize,
  });
}
