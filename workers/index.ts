import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Db } from '../src/db/client';
import type { TaskStore } from '../src/tasks/task-transitions';
import type { KlingClient } from '../src/kling/kling-client';
import type { Logger } from '../src/logger';
import { QUEUE, workerConnection, type Queues } from '../src/queues/queues';
import { deliverWebhookProcessor, type WebhookSettings } from './deliver-webhook.processor';
import { submitTaskProcessor } from './submit-task.processor';
import { sweepDueDeliveries, sweepQueuedTasks } from './sweep.processor';

export interface WorkerDeps {
  db: Db;
  store: TaskStore;
  webhooks: WebhookSettings;
  queues: Queues;
  kling: KlingClient;
  log: Logger;
  redisUrl: string;
  publicBaseUrl: string;
  concurrency: number;
  sweepIntervalMs: number;
  sweepMinAgeMs: number;
}

export interface RunningWorkers {
  workers: Worker[];
  close(): Promise<void>;
}

const SWEEP_SCHEDULER_ID = 'sweep-queued';

/** Starts every queue worker of this process. */
export function startWorkers(deps: WorkerDeps): RunningWorkers {
  const prefix = deps.queues.settings.prefix;
  const connections: Redis[] = [];
  const connection = () => {
    const c = workerConnection(deps.redisUrl) as Redis;
    connections.push(c);
    return c;
  };
  const submit = new Worker(QUEUE.submit, submitTaskProcessor(deps), { connection: connection(), prefix, concurrency: deps.concurrency });
  const deliver = new Worker(QUEUE.deliver, deliverWebhookProcessor(deps), {
    connection: connection(),
    prefix,
    concurrency: deps.concurrency,
  });
  const maintenance = new Worker(
    QUEUE.maintenance,
    async (job: Job) => {
      if (job.name === 'sweep') {
        const tasks = await sweepQueuedTasks({ ...deps, minAgeMs: deps.sweepMinAgeMs });
        const deliveries = await sweepDueDeliveries({ ...deps, minAgeMs: deps.sweepMinAgeMs });
        return { tasks, deliveries };
      }
      deps.log.warn({ job: job.name }, 'unknown maintenance job; dropped');
      return null;
    },
    { connection: connection(), prefix, concurrency: 1 },
  );
  for (const w of [submit, deliver, maintenance]) {
    w.on('failed', (job, err) => deps.log.warn({ queue: w.name, job_id: job?.id, err: err.message }, 'job attempt failed'));
    w.on('error', (err) => deps.log.error({ queue: w.name, err: err.message }, 'worker error'));
  }
  const scheduling = scheduleSweep(deps);
  return {
    workers: [submit, deliver, maintenance],
    async close() {
      scheduling.stop();
      await Promise.allSettled([submit.close(), deliver.close(), maintenance.close()]);
      await Promise.allSettled(connections.map((c) => c.quit()));
    },
  };
}

/**
 * One scheduler for the whole deployment (BullMQ job schedulers are upserted by id, so every
 * worker process may declare it). Retried until Redis answers.
 */
function scheduleSweep(deps: WorkerDeps): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const attempt = () => {
    deps.queues.maintenance
      .upsertJobScheduler(
        SWEEP_SCHEDULER_ID,
        { every: deps.sweepIntervalMs },
        { name: 'sweep', opts: { removeOnComplete: 100, removeOnFail: 100 } },
      )
      .catch((err: Error) => {
        deps.log.warn({ err: err.message }, 'could not schedule the sweep yet; retrying');
        if (!stopped) timer = setTimeout(attempt, 5000);
      });
  };
  attempt();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
