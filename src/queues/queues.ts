import { Queue, type JobsOptions } from 'bullmq';
import { CATALOGUE, type Catalogue, type DeliverJob, type QueueSettings, type SubmitJob } from './catalogue';
import type { RedisClient } from '../lib/redis-client';

/**
 * Job ids are deterministic, so that enqueuing the same work twice (API and sweep, or two sweeps)
 * creates one job.
 *
 * One job per attempt of a delivery: the id names the chain (redeliveries) and the attempts made,
 * so a sweep re-adding the due attempt is a no-op while that attempt's job exists, and a leftover
 * job of an earlier attempt recognises itself as stale.
 */
export const deliverJobId = (d: { id: string; chain: number; attemptCount: number }) => `deliver-${d.id}-${d.chain}-${d.attemptCount}`;

/** BullMQ job ids may not contain ':' nor be all digits; task ids are UUIDs, so a prefix suffices. */
export const submitJobId = (taskId: string) => `submit-${taskId}`;

export const storeJobId = (taskId: string) => `store-${taskId}`;

/** Options with the deterministic job id every enqueue of this project sets. */
export type IdentifiedJobOptions = JobsOptions & { jobId: string };

export function submitJobOptions(s: QueueSettings, taskId: string): IdentifiedJobOptions {
  return { ...CATALOGUE.submit.jobOptions(s), jobId: submitJobId(taskId) };
}

/** The queues of a catalogue by its keys, and what they share. */
export type QueuesOf<C extends Catalogue> = { readonly [K in keyof C]: Queue } & {
  /** What they were built from; workers, the dashboard and the metrics read the queue list here. */
  catalogue: C;
  /** Every queue, in the catalogue's order. */
  all: Queue[];
  /** The producer connection they share. */
  redis: RedisClient;
  settings: QueueSettings;
  /** False while Redis is unreachable: producers then skip enqueueing instead of waiting. */
  connected(): boolean;
  close(): Promise<void>;
  /** Drops the connections at once (when Redis is unreachable and close would wait forever). */
  disconnect(): void;
};

export type Queues = QueuesOf<typeof CATALOGUE>;

/** A queue for every entry of the catalogue (the project's own unless a test brings another). */
export function createQueues<C extends Catalogue = typeof CATALOGUE>(
  connection: RedisClient,
  settings: QueueSettings,
  catalogue: C = CATALOGUE as Catalogue as C,
): QueuesOf<C> {
  const byKey = Object.fromEntries(
    Object.entries(catalogue).map(([key, def]) => [key, new Queue(def.name, { connection, prefix: settings.prefix })]),
  ) as Record<keyof C, Queue>;
  const all: Queue[] = Object.values(byKey);
  // Without a listener an unreachable Redis would surface as an unhandled 'error' event.
  for (const q of all) q.on('error', () => undefined);
  return {
    ...byKey,
    catalogue,
    all,
    redis: connection,
    settings,
    connected: () => connection.status === 'ready',
    async close() {
      await Promise.allSettled(all.map((q) => q.close()));
    },
    disconnect() {
      // A queue's disconnect first waits for the shared connection to be ready and rejects with its
      // last error when it ends instead; unhandled, that rejection would crash the process.
      for (const q of all) q.disconnect().catch(() => undefined);
    },
  };
}

/**
 * Adds the job unless one with its id is waiting, delayed or running. A finished job kept for the
 * dashboard keeps its id and would silently swallow the add, so it is removed first. True when a
 * job was added.
 */
export async function ensureJob(queue: Queue, name: string, data: object, opts: IdentifiedJobOptions): Promise<boolean> {
  const state = await queue.getJobState(opts.jobId);
  if (state !== 'completed' && state !== 'failed' && state !== 'unknown') return false;
  if (state !== 'unknown') await queue.remove(opts.jobId);
  await queue.add(name, data, opts);
  return true;
}

/**
 * Gives each task a submit job unless it has a live one (tasks that waited for slots, tasks the
 * sweep found without a job). Returns how many were added.
 */
export async function requeueSubmits(queues: Queues, taskIds: string[]): Promise<number> {
  if (!queues.connected()) return 0;
  let added = 0;
  for (const id of taskIds) if (await ensureJob(queues.submit, 'submit', { taskId: id }, submitJobOptions(queues.settings, id))) added++;
  return added;
}

/** Gives each task a `result.store` job unless it has a live one (bounded: the results sweep covers what does not get through). */
export async function enqueueStores(queues: Queues, taskIds: string[]): Promise<boolean> {
  if (!queues.connected() || !taskIds.length) return false;
  const opts = (id: string) => ({ ...CATALOGUE.store.jobOptions(queues.settings), jobId: storeJobId(id) });
  return bounded(async () => {
    for (const id of taskIds) await ensureJob(queues.store, 'store', { taskId: id }, opts(id));
  }, 2000);
}

export function deliverJobOptions(d: { id: string; chain: number; attemptCount: number }, delayMs = 0): IdentifiedJobOptions {
  return { ...CATALOGUE.deliver.jobOptions(), jobId: deliverJobId(d), delay: Math.max(0, delayMs) };
}

/** Bounded in time like every enqueue after a commit: the sweep covers what does not get through. */
async function bounded(work: () => Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([work(), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('enqueue timed out')), timeoutMs)))]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** A delivery job that waits for an earlier delivery of its task looks again at least this often. */
export const DELIVERY_ORDER_RECHECK_MS = 1000;

/**
 * A job that finds an earlier delivery of its task pending looks again after this while it is
 * young: the earlier one usually ends within milliseconds and promotes it, but an end that raced
 * with this delivery's commit does not see it (BullMQ's delayed jobs also run up to ~100 ms late).
 */
export const DELIVERY_FIRST_RECHECK_MS = 50;

/** Asks for the first attempt of new deliveries (their rows are committed; the sweep is the safety net). */
export async function enqueueDeliveries(queues: Queues, deliveryIds: string[], timeoutMs = 2000): Promise<boolean> {
  if (!queues.connected() || deliveryIds.length === 0) return false;
  const jobs = deliveryIds.map((id) => ({
    name: 'deliver',
    data: { deliveryId: id } satisfies DeliverJob,
    opts: deliverJobOptions({ id, chain: 1, attemptCount: 0 }),
  }));
  return bounded(() => queues.deliver.addBulk(jobs), timeoutMs);
}

/** Asks for the due attempt of one delivery (e.g. after a redelivery). */
export async function enqueueDeliveryAttempt(
  queues: Queues,
  d: { id: string; chain: number; attemptCount: number },
  timeoutMs = 2000,
): Promise<boolean> {
  if (!queues.connected()) return false;
  return bounded(() => queues.deliver.add('deliver', { deliveryId: d.id } satisfies DeliverJob, deliverJobOptions(d)), timeoutMs);
}

/**
 * Enqueues the submission of tasks (one round trip). Bounded in time: the task is already committed, and the sweep
 * enqueues it later if Redis is slow or down, so the caller never waits long for Redis.
 */
export async function enqueueSubmits(queues: Queues, taskIds: string[], timeoutMs = 2000): Promise<boolean> {
  if (!queues.connected()) return false;
  const jobs = taskIds.map((taskId) => ({
    name: 'submit',
    data: { taskId } satisfies SubmitJob,
    opts: submitJobOptions(queues.settings, taskId),
  }));
  return bounded(() => queues.submit.addBulk(jobs), timeoutMs);
}
