import { v7 as timeOrderedUuid } from 'uuid';
import type { Db, Task, Tenant } from '../db/client';
import { AppError, invalidParameter } from '../errors';
import { groupCommit } from '../lib/group-commit';
import type { ModelFamily, SlotPool, TaskKind } from '../kinds/kind';
import { largestPoolLimits } from '../accounts/account-repository';
import type { Logger } from '../logger';
import { metrics } from '../observability/metrics';
import { checkPublicUrl } from '../webhooks/ssrf';
import { requestHash } from './idempotency';
import { countUnfinished, insertTasks, type Inserted, type NewKey, type NewTask } from './task-repository';

export interface CreateDeps {
  db: Db;
  log: Logger;
  /** The model_name values each family of kinds accepts (KLING_MODELS, KLING_VIDEO_MODELS); the first is the default. */
  models: Readonly<Record<ModelFamily, readonly string[]>>;
  /** WEBHOOK_ALLOW_PRIVATE_NETWORKS: client webhook URLs may point at private addresses. */
  allowPrivateWebhooks: boolean;
  /** How long an Idempotency-Key is remembered (IDEMPOTENCY_TTL_HOURS), in ms. */
  idempotencyTtlMs: number;
  maxUnfinishedTasks: number;
  /** The environment account's slots per pool (UPSTREAM_CONCURRENCY_*), until its row is written; absent: no slot check at create. */
  envPoolLimits?: Readonly<Record<SlotPool, number>>;
  /** Asks for the submission of committed tasks; false when it could not (the sweep enqueues them later). */
  enqueueSubmits(taskIds: string[]): Promise<boolean>;
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

export type CreateTask = (tenant: Tenant, kind: TaskKind, body: unknown, opts?: CreateOptions) => Promise<Created>;

/** How long the accounts' largest slot limits are trusted before they are read again. */
const CAPACITY_REREAD_MS = 2000;

/** Creates written together at most (one statement, one commit). */
const MAX_INSERT_BATCH = 100;
/** How long a tenant's count of unfinished tasks is trusted before it is read again. */
const UNFINISHED_RECOUNT_MS = 1000;

interface Insert {
  task: NewTask;
  at: Date;
  key?: NewKey;
}

/**
 * The create path of one API process: validate the kind's body, replay an accepted request, check
 * the limits, then record the task (with its Idempotency-Key, in the same statement) and ask for its
 * submission. Concurrent creates share one INSERT statement and one BullMQ round trip (group
 * commit: src/lib/group-commit.ts); each answer still comes only after its own row has committed.
 */
export function createTaskCreator(deps: CreateDeps): CreateTask {
  const keysExpireBefore = () => new Date(Date.now() - deps.idempotencyTtlMs);
  const insert = groupCommit(async (items: Insert[]): Promise<(Inserted | Error)[]> => {
    try {
      return await insertTasks(deps.db, items, keysExpireBefore());
    } catch (err) {
      if (items.length === 1) throw err;
      // One bad row must not fail the others: write them one by one, each with its own outcome.
      return Promise.all(items.map((item) => insertTasks(deps.db, [item], keysExpireBefore()).then(([r]) => r, asError)));
    }
  }, MAX_INSERT_BATCH);
  const enqueue = groupCommit(async (taskIds: string[]) => {
    const ok = await deps.enqueueSubmits(taskIds);
    return taskIds.map(() => ok);
  }, MAX_INSERT_BATCH);
  const unfinished = unfinishedCounter(deps);
  const capacity = poolCapacity(deps);

  return async (tenant, kind, body, opts = {}) => {
    const result = kind.validate(body, deps.models[kind.models]);
    if (!result.ok) throw invalidParameter(result.message);
    // The client's callback_url and external_task_id are ours to honour, never the upstream's.
    const { callback_url, external_task_id, ...request } = result.value;
    // The request as validated and as it will run: spelling a default out, key order, spacing and
    // the URL's casing make no difference.
    const key = opts.idempotencyKey
      ? { key: opts.idempotencyKey, requestHash: requestHash({ ...kind.upstreamDefaults, ...result.value }) }
      : undefined;
    const idempotency = key && { ...key, kind: kind.id, ttlMs: deps.idempotencyTtlMs, rawBody: body };
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
    // A task no enabled account could ever hold would wait forever: refused now, naming `n` (the
    // only field that makes a task cost more than one slot).
    const slotCost = kind.slotCost(result.value);
    const largest = slotCost > 1 ? await capacity(kind.pool, slotCost) : Infinity;
    if (slotCost > largest) {
      throw invalidParameter(`n: asks for ${slotCost} ${kind.pool} slots, and the most any enabled upstream account has is ${largest}`);
    }
    const newTask: NewTask = {
      // Time-ordered: the indexes on task ids (its own, its events', its deliveries') take each new
      // task at their newest end, in pages already in memory, not in a random page of the history.
      id: timeOrderedUuid(),
      requestId: opts.requestId,
      tenantId: tenant.id,
      externalTaskId: external_task_id,
      request,
      modelName: request.model_name,
      kind: kind.id,
      pool: kind.pool,
      slotCost,
      callbackUrl: callback_url,
      // Known from the start, so clients see from the first answer how long the copies are kept.
      resultsExpireAt: tenant.resultRetentionDays ? new Date(Date.now() + tenant.resultRetentionDays * 86_400_000) : undefined,
    };
    const inserted = await insert({ task: newTask, at: new Date(), key });
    if (inserted === 'duplicate') throw invalidParameter('external_task_id: is already used by another task of yours');
    if (inserted === 'key_taken') {
      // A concurrent request with the same key won: it is this request's answer once it has committed.
      const winner = await replay(deps.db, tenant.id, idempotency!);
      if (!winner) throw new AppError('conflict', 'Idempotency-Key: a request with this key is being processed; retry');
      return { task: winner, replayed: true };
    }
    unfinished.added(tenant.id);
    metrics.tasksCreated.inc({ kind: kind.id });
    if (!(await enqueue(inserted.id)))
      deps.log.warn({ task_id: inserted.id }, 'could not enqueue submission now; the sweep will pick the task up');
    return { task: inserted, replayed: false };
  };
}

/** The most slots an enabled account has in a pool, read at most every CAPACITY_REREAD_MS (and afresh before a refusal). */
function poolCapacity(deps: CreateDeps) {
  let known: { limits: Record<string, number>; at: number } | undefined;
  const env = deps.envPoolLimits;
  const read = async () => (known = { limits: env ? await largestPoolLimits(deps.db, env) : {}, at: Date.now() });
  return async (pool: SlotPool, cost = Infinity): Promise<number> => {
    if (!env) return Infinity;
    if (!known || Date.now() - known.at > CAPACITY_REREAD_MS) await read();
    // A refusal reflects the database: an account just added or raised counts.
    if ((known!.limits[pool] ?? 0) < cost) await read();
    return known!.limits[pool] ?? 0;
  };
}

const asError = (e: unknown) => (e instanceof Error ? e : new Error(String(e)));

/**
 * The per-tenant cap on unfinished tasks, without a count per create: a count is reused for a
 * second (plus this process's own creates), and read afresh before any refusal, so a refusal
 * always reflects the database. Soft: concurrent creates in other processes may pass it by a few.
 */
function unfinishedCounter(deps: CreateDeps) {
  const counts = new Map<string, { n: number; at: number }>();
  const recount = async (tenantId: string) => {
    const n = await countUnfinished(deps.db, tenantId, deps.maxUnfinishedTasks);
    if (counts.size >= 10_000) counts.clear();
    counts.set(tenantId, { n, at: Date.now() });
    return n;
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
 * refused when that request was another (another body, or another kind). Keys stored while the
 * hash covered the raw body still match a retry of that same body.
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
