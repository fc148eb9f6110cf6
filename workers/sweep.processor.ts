import type { Db } from '../src/db/client';
import type { Logger } from '../src/logger';
import { submitJobId, submitJobOptions, type Queues } from '../src/queues/queues';

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
  let requeued = 0;
  for (const { id } of tasks) {
    const job = await deps.queues.submit.getJob(submitJobId(id));
    if (job) {
      const state = await job.getState();
      if (state !== 'completed' && state !== 'failed' && state !== 'unknown') continue;
      // A finished job keeps its id and would swallow a new add with the same id.
      await job.remove();
    }
    await deps.queues.submit.add('submit', { taskId: id }, submitJobOptions(deps.queues.settings, id));
    requeued++;
  }
  if (requeued) deps.log.info({ requeued }, 'sweep re-enqueued queued tasks without a live job');
  return requeued;
}
