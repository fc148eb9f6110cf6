import type { Job, JobsOptions, WorkerOptions } from 'bullmq';
import { z } from 'zod';

/**
 * The job catalogue: every queue, the jobs it runs, their payloads, retry policy, worker options and
 * schedules. The queues, the workers, the dashboard and the queue metrics are all built from it, so
 * the list of queues exists here only; the handlers are bound to it by the worker process
 * (`Handlers`), and the type checker refuses a job without one.
 */

export const SubmitJob = z.object({ taskId: z.string().min(1) });
export type SubmitJob = z.infer<typeof SubmitJob>;

export const DeliverJob = z.object({ deliveryId: z.string().min(1) });
export type DeliverJob = z.infer<typeof DeliverJob>;

export const StoreJob = z.object({ taskId: z.string().min(1) });
export type StoreJob = z.infer<typeof StoreJob>;

/** A scheduled job carries nothing: each run reads from Postgres what is due. */
export const ScheduledJob = z.object({});
export type ScheduledJob = z.infer<typeof ScheduledJob>;

/** What producers' job options depend on (set by every process that enqueues). */
export interface QueueSettings {
  prefix: string;
  submitAttempts: number;
  submitBackoffMs: number;
  /** Attempts of copying a task's outputs, and the first retry delay (doubles each attempt). */
  storageAttempts?: number;
  storageBackoffMs?: number;
}

/** What workers and schedules depend on (set by worker processes). */
export interface WorkerSettings {
  /** Jobs of one queue a worker process runs at once (WORKER_CONCURRENCY). */
  concurrency: number;
  /** BullMQ lock duration; also the stalled-job check interval (WORKER_LOCK_MS). */
  lockMs: number;
  sweepIntervalMs: number;
  reconcileIntervalMs: number;
  /** IDEMPOTENCY_TTL_HOURS in ms. */
  idempotencyTtlMs: number;
  /** Tasks whose outputs one worker process copies at once (STORAGE_CONCURRENCY). */
  storageConcurrency?: number;
}

export interface JobDefinition<P extends z.ZodType = z.ZodType> {
  /** Ids only: Postgres holds the truth. Checked before the handler runs. */
  payload: P;
  /** Run every this many ms by one BullMQ job scheduler for the whole deployment (its id is the job name). */
  every?: (s: WorkerSettings) => number;
}

export interface QueueDefinition {
  /** Lowercase and dot-namespaced. */
  name: string;
  /** Retry and retention of every job of the queue; job ids and delays are set where a job is added. */
  jobOptions: (s: QueueSettings) => JobsOptions;
  worker: (s: WorkerSettings) => Pick<WorkerOptions, 'concurrency' | 'lockDuration' | 'stalledInterval'>;
  /** By job name. */
  jobs: Record<string, JobDefinition>;
}

export type Catalogue = Record<string, QueueDefinition>;

/** A handler gets its payload parsed; the job is there for what BullMQ itself offers (attempts, delays). */
export type Handler<P extends z.ZodType> = (payload: z.infer<P>, job: Job, token?: string) => Promise<unknown>;

export type Handlers<C extends Catalogue> = {
  [Q in keyof C]: { [J in keyof C[Q]['jobs']]: Handler<C[Q]['jobs'][J]['payload']> };
};

/** Failed jobs stay for the dashboard; Postgres records every outcome. */
const KEEP_FAILED = { age: 7 * 24 * 3600, count: 10_000 };

// A killed worker's active jobs are stalled once their lock lapses, and re-run by a live worker.
const lockedWorker = (s: WorkerSettings) => ({ concurrency: s.concurrency, lockDuration: s.lockMs, stalledInterval: s.lockMs });

/**
 * The maintenance duties, each its own job on its own schedule: a slow or failing one does not
 * hold up the others. Each is safe to run anywhere and at the same time as itself.
 */
const MAINTENANCE_JOBS = {
  /** Ends tasks past a stage limit of their kind. */
  'tasks.fail-timed-out': { payload: ScheduledJob, every: (s) => s.sweepIntervalMs },
  /** Re-enqueues queued tasks without a live submit job. */
  'tasks.requeue': { payload: ScheduledJob, every: (s) => s.sweepIntervalMs },
  /** Re-enqueues overdue pending deliveries without a live job. */
  'deliveries.requeue': { payload: ScheduledJob, every: (s) => s.sweepIntervalMs },
  /** Polls the upstream for tasks whose callback is overdue. */
  'tasks.reconcile': { payload: ScheduledJob, every: (s) => s.reconcileIntervalMs },
  // A key outlives its TTL by at most one interval: a minute, less for a shorter TTL, at most once a second.
  'idempotency-keys.forget': { payload: ScheduledJob, every: (s) => Math.min(60_000, Math.max(1_000, s.idempotencyTtlMs)) },
  // As often as the sweeps: the check is one read of the statistics views, and a new database's plans are fixed within one interval.
  'tables.analyze': { payload: ScheduledJob, every: (s) => s.sweepIntervalMs },
  // Each run removes a bounded number of small batches: finished history leaves as a steady trickle.
  'history.prune': { payload: ScheduledJob, every: () => 60_000 },
  /** Tasks in `storing`: past STORAGE_TIMEOUT_MS they succeed with the upstream's URLs; any without a live job gets one. */
  'results.sweep': { payload: ScheduledJob, every: (s) => s.sweepIntervalMs },
  // Copies past their tenant's retention leave in batches, as finished history does.
  'results.expire': { payload: ScheduledJob, every: () => 60_000 },
} satisfies Record<string, JobDefinition>;

export const CATALOGUE = {
  submit: {
    name: 'task.submit',
    jobOptions: (s) => ({
      attempts: s.submitAttempts,
      backoff: { type: 'exponential', delay: s.submitBackoffMs, jitter: 0.5 },
      // A finished submit job is gone at once, so waking a task that waited for slots is a single add.
      removeOnComplete: true,
      removeOnFail: KEEP_FAILED,
    }),
    worker: lockedWorker,
    jobs: { submit: { payload: SubmitJob } },
  },
  deliver: {
    name: 'webhook.deliver',
    // Retry and ordering live in Postgres (the delivery row), so a delivery job itself never retries;
    // every attempt is recorded in webhook_attempts, so finished jobs would only repeat it.
    jobOptions: () => ({ attempts: 1, removeOnComplete: true, removeOnFail: KEEP_FAILED }),
    worker: lockedWorker,
    jobs: { deliver: { payload: DeliverJob } },
  },
  store: {
    name: 'result.store',
    // Retried with back-off past STORAGE_TIMEOUT_MS too: a task that succeeded with the upstream's
    // URLs gets this service's links when a later attempt stores them.
    jobOptions: (s) => ({
      attempts: s.storageAttempts ?? 12,
      backoff: { type: 'exponential', delay: s.storageBackoffMs ?? 2000, jitter: 0.5 },
      removeOnComplete: true,
      removeOnFail: KEEP_FAILED,
    }),
    worker: (s) => ({ concurrency: s.storageConcurrency ?? 4, lockDuration: s.lockMs, stalledInterval: s.lockMs }),
    jobs: { store: { payload: StoreJob } },
  },
  maintenance: {
    name: 'task.maintenance',
    // The next run comes from the scheduler, so a failed one is not retried.
    jobOptions: () => ({ attempts: 1, removeOnComplete: 100, removeOnFail: 100 }),
    // A slot per duty: a run that outlasts its interval is skipped, not doubled (see the worker), so none waits for another.
    worker: () => ({ concurrency: Object.keys(MAINTENANCE_JOBS).length }),
    jobs: MAINTENANCE_JOBS,
  },
} satisfies Catalogue;

export type MaintenanceJobName = keyof typeof MAINTENANCE_JOBS;
