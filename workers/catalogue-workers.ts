import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { z } from 'zod';
import type { Logger } from '../src/logger';
import type { Catalogue, Handler, Handlers, QueueDefinition, WorkerSettings } from '../src/queues/catalogue';
import type { QueuesOf } from '../src/queues/queues';
import type { RedisClient } from '../src/lib/redis-client';
import { createWorkerConnection, type RedisTarget } from '../src/queues/redis-connections';

export interface CatalogueWorkers<C extends Catalogue> {
  /** The worker of each queue, by catalogue key. */
  byKey: { [K in keyof C]: Worker };
  all: Worker[];
  /** Waits for the jobs in progress to finish (graceful shutdown), then drops the connections. */
  close(): Promise<void>;
}

export interface CatalogueWorkerOptions {
  redisTarget: RedisTarget;
  settings: WorkerSettings;
  log: Logger;
}

/** One BullMQ worker per queue of the catalogue, each on its own connection (it blocks on reads). */
export function startCatalogueWorkers<C extends Catalogue>(
  queues: QueuesOf<C>,
  handlers: Handlers<C>,
  opts: CatalogueWorkerOptions,
): CatalogueWorkers<C> {
  const connections: RedisClient[] = [];
  const byKey = {} as { [K in keyof C]: Worker };
  for (const key of Object.keys(queues.catalogue) as (keyof C & string)[]) {
    const def = queues.catalogue[key];
    const connection = createWorkerConnection(opts.redisTarget);
    connections.push(connection);
    const processor = guardedProcessor(def, handlers[key] as Record<string, Handler<z.ZodType>>);
    const w = new Worker(def.name, processor, { connection, prefix: queues.settings.prefix, ...def.worker(opts.settings) });
    w.on('failed', (job, err) => opts.log.warn({ queue: w.name, job: job?.name, job_id: job?.id, err: err.message }, 'job attempt failed'));
    w.on('error', (err) => opts.log.error({ queue: w.name, err: err.message }, 'worker error'));
    byKey[key] = w;
  }
  const all: Worker[] = Object.values(byKey);
  return {
    byKey,
    all,
    async close() {
      await Promise.allSettled(all.map((w) => w.close()));
      await Promise.allSettled(connections.map((c) => c.quit()));
    },
  };
}

/**
 * The processor of one queue: finds the job's entry by name, parses its payload, then calls its
 * handler. A job the catalogue does not know, or whose payload its schema refuses, can never
 * succeed: it fails at once, kept for the dashboard with the reason.
 */
function guardedProcessor(def: QueueDefinition, handlers: Record<string, Handler<z.ZodType>>) {
  // Scheduled jobs of this worker in progress: their scheduler adds the next run as one starts.
  const running = new Set<string>();
  return async (job: Job, token?: string): Promise<unknown> => {
    if (!Object.hasOwn(def.jobs, job.name))
      throw new UnrecoverableError(`${def.name}: no job named ${JSON.stringify(job.name)} in the catalogue`);
    const { payload, every } = def.jobs[job.name];
    const parsed = payload.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`${def.name} ${job.name}: payload refused: ${z.prettifyError(parsed.error)}`);
    if (!every) return handlers[job.name](parsed.data, job, token);
    // A run that outlasts its interval is not doubled in this process, so it takes one slot at most.
    if (running.has(job.name)) return 'skipped: the previous run is still going';
    running.add(job.name);
    try {
      return await handlers[job.name](parsed.data, job, token);
    } finally {
      running.delete(job.name);
    }
  };
}
