import type { Db, Prisma } from '../src/db/client';
import type { Logger } from '../src/logger';
import { requestEnd, type TaskStore } from '../src/tasks/task-transitions';

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
 * limit: a slow but healthy stage is judged by its own limit, not by one blunt global timeout. A
 * task whose submission is under way is not ended before its outcome is known (requestEnd): it is
 * marked, and then no longer looked at here.
 */
export async function failTimedOutTasks(deps: TimeoutDeps): Promise<number> {
  const now = Date.now();
  const { queueMs, startMs, totalMs } = deps.limits;
  const stages: { reason: string; message: string; where: Prisma.TaskWhereInput }[] = [
    {
      reason: 'total_timeout',
      message: `timed out: not finished within ${minutes(totalMs)} of creation (TOTAL_TIMEOUT_MS)`,
      where: {
        OR: [{ state: { in: ['submitted', 'processing'] } }, { state: 'queued', cancelRequestedAt: null }],
        createdAt: { lt: new Date(now - totalMs) },
      },
    },
    {
      reason: 'queue_timeout',
      message: `timed out: waited more than ${minutes(queueMs)} in the local queue before reaching the upstream (QUEUE_TIMEOUT_MS)`,
      where: { state: 'queued', cancelRequestedAt: null, createdAt: { lt: new Date(now - queueMs) } },
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
      const outcome = await requestEnd(deps.store, id, {
        reason: stage.reason,
        message: stage.message,
        source: 'sweep',
        atUpstream: 'end',
      });
      if (outcome?.result === 'ended') {
        ended++;
        deps.log.warn({ task_id: id, reason: stage.reason }, stage.message);
      } else if (outcome?.result === 'ending') {
        deps.log.warn(
          { task_id: id, reason: stage.reason },
          `${stage.message}; its submission is under way: it ends once the upstream's answer is known`,
        );
      }
    }
  }
  return ended;
}
