import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { CallbackTokens } from '../src/callbacks/callback-token';
import type { Db } from '../src/db/client';
import { analyzeStaleTables } from '../src/db/table-stats';
import type { KlingClient } from '../src/kling/kling-client';
import type { Logger } from '../src/logger';
import { startHeartbeat } from '../src/observability/heartbeat';
import { QUEUE, workerConnection, type Queues } from '../src/queues/queues';
import type { TaskStore } from '../src/tasks/status-machine';
import type { OpenWebhookSecrets } from '../src/tenants/secret-box';
import { deliverWebhookProcessor } from './deliver-webhook.processor';
import type { WebhookSettings } from '../src/webhooks/delivery-attempt';
import { reconcileDueTasks } from './reconcile.processor';
import { submitTaskProcessor } from './submit-task.processor';
import { sweepDueDeliveries, sweepQueuedTasks } from './sweep.processor';
import { failTimedOutTasks } from './timeouts.processor';
import type { KindId, StageLimits } from '../src/kinds/kind';
import type { PoolLimits } from '../src/tasks/task-slots';

export interface WorkerDeps {
  db: Db;
  /** Opens a tenant's sealed webhook secrets (memoized, shared with the process's inline sends). */
  openWebhookSecrets: OpenWebhookSecrets;
  /** The MACs in tasks' callback URLs. */
  callbackTokens: CallbackTokens;
  store: TaskStore;
  webhooks: WebhookSettings;
  queues: Queues;
  kling: KlingClient;
  log: Logger;
  redisUrl: string;
  publicBaseUrl: string;
  concurrency: number;
  /** BullMQ lock duration; also the stalled-job check interval (WORKER_LOCK_MS). */
  lockMs: number;
  sweepIntervalMs: number;
  sweepMinAgeMs: number;
  reconcileIntervalMs: number;
  pollAfterMs: number;
  /** Upstream slots of the configured credential, per pool (UPSTREAM_CONCURRENCY_IMAGE, UPSTREAM_CONCURRENCY_VIDEO). */
  poolLimits: PoolLimits;
  throttlePauseMs: number;
  /** Each kind's stage limits. */
  limits: ReadonlyMap<KindId, StageLimits>;
  /** Idempotency keys older than this are deleted by the sweep (IDEMPOTENCY_TTL_HOURS). */
  idempotencyTtlMs: number;
}

export interface RunningWorkers {
  workers: Worker[];
  close(): Promise<void>;
}

/** Maintenance jobs, each produced by one BullMQ job scheduler for the whole deployment. */
const SCHEDULES = [
  { id: 'sweep', every: (d: WorkerDeps) => d.sweepIntervalMs },
  { id: 'reconcile', every: (d: WorkerDeps) => d.reconcileIntervalMs },
] as const;

/** Starts every queue worker of this process. */
export function startWorkers(deps: WorkerDeps): RunningWorkers {
  const prefix = deps.queues.settings.prefix;
  const connections: Redis[] = [];
  const connection = () => {
    const c = workerConnection(deps.redisUrl) as Redis;
    connections.push(c);
    return c;
  };
  // A killed worker's active jobs are stalled once their lock lapses, and re-run by a live worker.
  const common = { prefix, lockDuration: deps.lockMs, stalledInterval: deps.lockMs };
  // The submit processor pauses its whole queue on 1302/1303 (worker.rateLimit), hence the late binding.
  let submit: Worker | undefined;
  const pauseSubmissions = async (ms: number) => void (await submit?.rateLimit(ms));
  submit = new Worker(QUEUE.submit, submitTaskProcessor({ ...deps, pauseSubmissions }), {
    ...common,
    connection: connection(),
    concurrency: deps.concurrency,
  });
  const deliver = new Worker(QUEUE.deliver, deliverWebhookProcessor(deps), {
    ...common,
    connection: connection(),
    concurrency: deps.concurrency,
  });
  const maintenance = new Worker(QUEUE.maintenance, (job: Job) => runMaintenance(deps, job), {
    connection: connection(),
    prefix,
    concurrency: 1,
  });
  const workers = [submit, deliver, maintenance];
  for (const w of workers) {
    w.on('failed', (job, err) => deps.log.warn({ queue: w.name, job_id: job?.id, err: err.message }, 'job attempt failed'));
    w.on('error', (err) => deps.log.error({ queue: w.name, err: err.message }, 'worker error'));
  }
  const scheduling = scheduleMaintenance(deps);
  const heartbeat = startHeartbeat(deps.queues.maintenance.opts.connection as Redis, prefix);
  return {
    workers,
    async close() {
      scheduling.stop();
      await heartbeat.stop();
      // Worker.close waits for the jobs in progress to finish (graceful shutdown).
      await Promise.allSettled(workers.map((w) => w.close()));
      await Promise.allSettled(connections.map((c) => c.quit()));
    },
  };
}

async function runMaintenance(deps: WorkerDeps, job: Job): Promise<unknown> {
  if (job.name === 'sweep') {
    const timedOut = await failTimedOutTasks(deps);
    const tasks = await sweepQueuedTasks({ ...deps, minAgeMs: deps.sweepMinAgeMs });
    const deliveries = await sweepDueDeliveries({ ...deps, minAgeMs: deps.sweepMinAgeMs });
    const forgotten = await deps.db.idempotencyKey.deleteMany({
      where: { createdAt: { lt: new Date(Date.now() - deps.idempotencyTtlMs) } },
    });
    // Only where autovacuum does not run: statistics for the hot path's plans (table-stats.ts).
    const analyzed = await analyzeStaleTables(deps.db).catch((err: Error) => {
      deps.log.warn({ err: err.message }, 'could not analyze the tables autovacuum does not; plans may read more rows than needed');
      return [];
    });
    return { timedOut, tasks, deliveries, forgottenKeys: forgotten.count, analyzed };
  }
  if (job.name === 'reconcile') return reconcileDueTasks(deps);
  deps.log.warn({ job: job.name }, 'unknown maintenance job; dropped');
  return null;
}

/**
 * Job schedulers are upserted by id, so every worker process may declare them and there is still
 * one job per interval for the deployment. Retried until Redis answers, and declared again after
 * every reconnect and every minute: a Redis that restarted empty has forgotten them.
 */
function scheduleMaintenance(deps: WorkerDeps): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const redis = deps.queues.maintenance.opts.connection as Redis;
  const onReady = () => attempt();
  redis.on('ready', onReady);
  const refresh = setInterval(() => attempt(), 60_000);
  const attempt = () => {
    Promise.all(
      SCHEDULES.map((s) =>
        deps.queues.maintenance.upsertJobScheduler(
          s.id,
          { every: s.every(deps) },
          { name: s.id, opts: { removeOnComplete: 100, removeOnFail: 100 } },
        ),
      ),
    ).catch((err: Error) => {
      deps.log.warn({ err: err.message }, 'could not schedule maintenance yet; retrying');
      clearTimeout(timer);
      if (!stopped) timer = setTimeout(attempt, 5000);
    });
  };
  attempt();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      clearInterval(refresh);
      redis.off('ready', onReady);
    },
  };
}
