import type { Db, Prisma } from '../db/client';
import type { Logger } from '../logger';
import type { KindId, StageLimits } from '../kinds/kind';
import { kindEnvName } from '../kinds/stage-limits';
import { requestEnd } from './end-task';
import { type TaskStore } from './status-machine';

export interface TimeoutDeps {
  db: Db;
  store: TaskStore;
  log: Logger;
  /** Each kind's stage limits (stageLimitsByKind). */
  limits: ReadonlyMap<KindId, StageLimits>;
}

const BATCH = 200;

const minutes = (ms: number) => (ms >= 60_000 ? `${Math.round(ms / 60_000)} min` : `${Math.round(ms / 1000)} s`);

/**
 * Ends tasks past a stage limit of their kind as failed, each with its own reason code and a
 * message naming the limit: a slow but healthy stage is judged by its own limit, not by one blunt
 * global timeout, and a video by a video's limits. A task whose submission is under way is not
 * ended before its outcome is known (requestEnd): it is marked, and then no longer looked at here.
 */
export async function failTimedOutTasks(deps: TimeoutDeps): Promise<number> {
  let ended = 0;
  for (const [kind, limits] of deps.limits) ended += await failTimedOutTasksOf(deps, kind, limits);
  return ended;
}

async function failTimedOutTasksOf(deps: TimeoutDeps, kind: KindId, { queueMs, startMs, totalMs }: StageLimits): Promise<number> {
  const now = Date.now();
  const name = (stage: string) => `${stage}_TIMEOUT_MS_${kindEnvName(kind)}`;
  const stages: { reason: string; message: string; where: Prisma.TaskWhereInput }[] = [
    {
      reason: 'total_timeout',
      message: `timed out: not finished within ${minutes(totalMs)} of creation (${name('TOTAL')})`,
      where: {
        kind,
        OR: [{ state: { in: ['submitted', 'processing'] } }, { state: 'queued', cancelRequestedAt: null }],
        createdAt: { lt: new Date(now - totalMs) },
      },
    },
    {
      reason: 'queue_timeout',
      message: `timed out: waited more than ${minutes(queueMs)} in the local queue before reaching the upstream (${name('QUEUE')})`,
      where: { kind, state: 'queued', cancelRequestedAt: null, createdAt: { lt: new Date(now - queueMs) } },
    },
    {
      reason: 'start_timeout',
      message: `timed out: the upstream accepted the task but did not start it within ${minutes(startMs)} (${name('START')})`,
      where: { kind, state: 'submitted', submittedAt: { lt: new Date(now - startMs) } },
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
