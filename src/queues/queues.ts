import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { z } from 'zod';

/**
 * The job catalogue. Payloads carry ids only (Postgres holds the truth); job ids are deterministic
 * so that enqueuing the same work twice (API and sweep, or two sweeps) creates one job.
 */
export const QUEUE = {
  submit: 'task.submit',
  maintenance: 'task.maintenance',
} as const;

export const SubmitJob = z.object({ taskId: z.string().min(1) });
export type SubmitJob = z.infer<typeof SubmitJob>;

/** BullMQ job ids may not contain ':' nor be all digits; task ids are UUIDs, so a prefix suffices. */
export const submitJobId = (taskId: string) => `submit-${taskId}`;

export interface QueueSettings {
  prefix: string;
  submitAttempts: number;
  submitBackoffMs: number;
}

export function submitJobOptions(s: QueueSettings, taskId: string): JobsOptions {
  return {
    jobId: submitJobId(taskId),
    attempts: s.submitAttempts,
    backoff: { type: 'exponential', delay: s.submitBackoffMs, jitter: 0.5 },
    // Finished jobs are only a cache of what Postgres records; keep enough for the dashboard.
    removeOnComplete: { age: 3600, count: 1000 },
    removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
  };
}

/** Connection for producers: fails fast while Redis is down instead of queueing commands in memory. */
export function createProducerConnection(redisUrl: string): Redis {
  return new Redis(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false });
}

/** Connection for workers: BullMQ requires blocking commands to wait forever across reconnects. */
export function workerConnection(redisUrl: string): ConnectionOptions {
  return new Redis(redisUrl, { maxRetriesPerRequest: null });
}

export interface Queues {
  submit: Queue;
  maintenance: Queue;
  settings: QueueSettings;
  /** False while Redis is unreachable: producers then skip enqueueing instead of waiting. */
  connected(): boolean;
  close(): Promise<void>;
  /** Drops the connections at once (when Redis is unreachable and close would wait forever). */
  disconnect(): void;
}

export function createQueues(connection: Redis, settings: QueueSettings): Queues {
  const opts = { connection, prefix: settings.prefix };
  const submit = new Queue(QUEUE.submit, opts);
  const maintenance = new Queue(QUEUE.maintenance, opts);
  // Without a listener an unreachable Redis would surface as an unhandled 'error' event.
  for (const q of [submit, maintenance]) q.on('error', () => undefined);
  return {
    submit,
    maintenance,
    settings,
    connected: () => connection.status === 'ready',
    async close() {
      await Promise.allSettled([submit.close(), maintenance.close()]);
    },
    disconnect() {
      void submit.disconnect();
      void maintenance.disconnect();
    },
  };
}

/**
 * Enqueues the submission of a task. Bounded in time: the task is already committed, and the sweep
 * enqueues it later if Redis is slow or down, so the caller never waits long for Redis.
 */
export async function enqueueSubmit(queues: Queues, taskId: string, timeoutMs = 2000): Promise<boolean> {
  if (!queues.connected()) return false;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      queues.submit.add('submit', { taskId } satisfies SubmitJob, submitJobOptions(queues.settings, taskId)),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('enqueue timed out')), timeoutMs);
      }),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
