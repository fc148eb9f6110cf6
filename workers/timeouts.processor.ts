import type { Db, Prisma } from '../src/db/client';
import type { Logger } from '../src/logger';
import { failTask, type TaskStore } from '../src/tasks/task-transitions';

export interface StageLimits {
  queueMs: number;
  startMs: number;
  totalMs: number;
}

export interface TimeoutDeps {
  db: Db;
  store: TaskStore;
  log: Logger;
  limits: StageLimits;
}

const BATCH = 200;

const minutes = (ms: number) => (ms >= 60_000 ? `${Math.round(ms / 60_000)} min` : `${Math.round(ms / 1000)} s`);

/**
 * Ends tasks past a stage limit as failed, each with its own reason code and a message naming the
 * limit: a slow but healthy stage is judged by its own limit, not by one blunt global timeout.
 */
export async function failTimedOutTasks(deps: TimeoutDeps): Promise<number> {
  const now = Date.now();
  const { queueMs, startMs, totalMs } = deps.limits;
  const stages: { reason: string; message: string; where: Prisma.TaskWhereInput }[] = [
    {
      reason: 'total_timeout',
      message: `timed out: not finished within ${minutes(totalMs)} of creation (TOTAL_TIMEOUT_MS)`,
      where: { state: { in: ['queued', 'submitted', 'processing'] }, createdAt: { lt: new Date(now - totalMs) } },
    },
    {
      reason: 'queue_timeout',
      message: `timed out: waited more than ${minutes(queueMs)} in the local queue before reaching the upstream (QUEUE_TIMEOUT_MS)`,
      where: { state: 'queued', createdAt: { lt: new Date(now - queueMs) } },
    },
    {
      reason: 'start_timeout',
      message: `timed out: the upstream accepted the task but did not start it within ${minutes(startMs)} (START_TIMEOUT_MS)`,
      where: { state: 'submitted', submittedAt: { lt: new Date(now - startMs) } },
    },
  ];
  let ended = 0;
  for (const stage of stages) {
    const tasks = await deps.db.task.findMany({ where: stage.where, select: { id: true }, take: BATCH });
    for (const { id } of tasks) {
      if (await failTask(deps.store, id, stage.reason, stage.message, 'sweep')) {
        ended++;
        deps.log.warn({ task_id: id, reason: stage.reason }, stage.message);
      }
    }
  }
  return ended;
}
