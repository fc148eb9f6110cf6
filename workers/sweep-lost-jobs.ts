import type { Db } from '../src/db/client';
import type { Logger } from '../src/logger';
import { deliverJobOptions, ensureJob, requeueSubmits, type Queues } from '../src/queues/queues';

export interface SweepDeps {
  db: Db;
  queues: Queues;
  log: Logger;
  minAgeMs: number;
}

const BATCH = 500;

/**
 * Re-enqueues queued tasks that have no live submit job: the enqueue after commit was skipped
 * (Redis down, process killed between the two) or the job was lost. Safe to run anywhere, any
 * number of times: job ids are deterministic and the submit step is guarded.
 */
export async function sweepQueuedTasks(deps: SweepDeps): Promise<number> {
  const cutoff = new Date(Date.now() - deps.minAgeMs);
  const tasks = await deps.db.task.findMany({
    where: { state: 'queued', createdAt: { lt: cutoff } },
    select: { id: true },
    orderBy: { createdAt: 'asc' },
    take: BATCH,
  });
  const requeued = await requeueSubmits(
    deps.queues,
    tasks.map((t) => t.id),
  );
  if (requeued) deps.log.info({ requeued }, 'sweep re-enqueued queued tasks without a live job');
  return requeued;
}

/**
 * Re-enqueues pending deliveries whose attempt is overdue and has no live job: the enqueue after
 * the commit was lost, or the process died mid-attempt. The deterministic job id makes a re-add of
 * a live job a no-op; the processor itself keeps order and skips stale jobs.
 */
export async function sweepDueDeliveries(deps: SweepDeps): Promise<number> {
  const cutoff = new Date(Date.now() - deps.minAgeMs);
  const due = await deps.db.webhookDelivery.findMany({
    where: { status: 'pending', nextAttemptAt: { lt: cutoff } },
    select: { id: true, chain: true, attemptCount: true },
    orderBy: { nextAttemptAt: 'asc' },
    take: BATCH,
  });
  let requeued = 0;
  for (const d of due) {
    if (await ensureJob(deps.queues.deliver, 'deliver', { deliveryId: d.id }, deliverJobOptions(d))) requeued++;
  }
  if (requeued) deps.log.info({ requeued }, 'sweep re-enqueued webhook deliveries without a live job');
  return requeued;
}
