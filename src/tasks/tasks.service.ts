import { randomBytes, randomUUID } from 'node:crypto';
import type { Db, Task, Tenant } from '../db/client';
import { isUniqueViolation } from '../db/client';
import { AppError, invalidParameter } from '../errors';
import type { Logger } from '../logger';
import { enqueueSubmit, type Queues } from '../queues/queues';
import { metrics } from '../observability/metrics';
import { checkPublicUrl } from '../webhooks/ssrf';
import { validateCreateTaskRequest } from './create-task.schema';
import { IdempotencyKeyTaken, requestHash } from './idempotency';
import type { TaskChanges } from './task-changes';
import { insertTask, type TaskStore } from './task-transitions';

export interface TasksDeps {
  db: Db;
  store: TaskStore;
  queues: Queues;
  log: Logger;
  models: readonly string[];
  allowPrivateWebhooks: boolean;
  /** How long an Idempotency-Key is remembered (IDEMPOTENCY_TTL_HOURS), in ms. */
  idempotencyTtlMs: number;
  maxUnfinishedTasks: number;
  changes: TaskChanges;
}

export interface CreateOptions {
  idempotencyKey?: string;
  requestId?: string;
}

export interface Created {
  task: Task;
  /** True when an earlier request with the same Idempotency-Key and body created the task. */
  replayed: boolean;
}

/**
 * Validates and records a task, then asks for its submission. The row is committed before this
 * returns; enqueueing is best effort because the sweep picks up any queued task without a job.
 */
export async function createTask(deps: TasksDeps, tenant: Tenant, body: unknown, opts: CreateOptions = {}): Promise<Created> {
  const result = validateCreateTaskRequest(body, deps.models);
  if (!result.ok) throw invalidParameter(result.message);
  // The client's callback_url and external_task_id are ours to honour, never the upstream's.
  const { callback_url, external_task_id, ...request } = result.value;
  if (callback_url && !deps.allowPrivateWebhooks) {
    const problem = await checkPublicUrl(callback_url);
    if (problem) throw invalidParameter(`callback_url: ${problem}`);
  }
  const key = opts.idempotencyKey;
  const idempotency = key ? { key, requestHash: requestHash(body), ttlMs: deps.idempotencyTtlMs } : undefined;
  // A retry of a request already accepted gets its task, whatever the limits say now.
  if (idempotency) {
    const earlier = await replay(deps.db, tenant.id, idempotency);
    if (earlier) return { task: earlier, replayed: true };
  }
  // A soft cap (concurrent creates may pass it by a few): it bounds a runaway client, not billing.
  const unfinished = await deps.db.task.count({ where: { tenantId: tenant.id, state: { in: ['queued', 'submitted', 'processing'] } } });
  if (unfinished >= deps.maxUnfinishedTasks) {
    throw new AppError('rate_limited', `too many unfinished tasks (limit ${deps.maxUnfinishedTasks}); retry when some have finished`, {
      'retry-after': '10',
    });
  }
  let task: Task;
  try {
    task = await insertTask(
      deps.db,
      {
        id: randomUUID(),
        requestId: opts.requestId,
        tenantId: tenant.id,
        externalTaskId: external_task_id,
        request,
        modelName: request.model_name,
        n: request.n ?? 1,
        callbackUrl: callback_url,
        callbackToken: randomBytes(24).toString('base64url'),
      },
      idempotency,
    );
  } catch (err) {
    if (err instanceof IdempotencyKeyTaken) {
      const winner = await replay(deps.db, tenant.id, idempotency!);
      if (!winner) throw new AppError('conflict', 'Idempotency-Key: a request with this key is being processed; retry');
      return { task: winner, replayed: true };
    }
    if (isUniqueViolation(err)) throw invalidParameter('external_task_id: is already used by another task of yours');
    throw err;
  }
  metrics.tasksCreated.inc();
  const queued = await enqueueSubmit(deps.queues, task.id);
  if (!queued) deps.log.warn({ task_id: task.id }, 'could not enqueue submission now; the sweep will pick the task up');
  return { task, replayed: false };
}

/**
 * The task an earlier request with this key created (null when the key is unused or forgotten);
 * refused when that request had another body.
 */
async function replay(db: Db, tenantId: string, idem: { key: string; requestHash: string; ttlMs: number }): Promise<Task | null> {
  const row = await db.idempotencyKey.findUnique({ where: { tenantId_key: { tenantId, key: idem.key } }, include: { task: true } });
  if (!row || row.createdAt.getTime() < Date.now() - idem.ttlMs) return null;
  if (row.requestHash !== idem.requestHash) {
    throw new AppError('conflict', 'Idempotency-Key: was already used with a different request body; use a new key for a new request');
  }
  return row.task;
}

/** A tenant's task by this service's task_id, or else by the tenant's own external_task_id. */
export async function findTask(db: Db, tenantId: string, id: string): Promise<Task> {
  const task =
    (await db.task.findFirst({ where: { id, tenantId } })) ?? (await db.task.findFirst({ where: { tenantId, externalTaskId: id } }));
  // Another tenant's task is indistinguishable from a missing one.
  if (!task) throw new AppError('not_found', `task not found: ${id.slice(0, 100)}`);
  return task;
}

export async function listTasks(db: Db, tenantId: string, pageNum: number, pageSize: number): Promise<Task[]> {
  return db.task.findMany({
    where: { tenantId },
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
    skip: (pageNum - 1) * pageSize,
    take: pageSize,
  });
}
