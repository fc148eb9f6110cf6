import { metrics } from '../observability/metrics';
import { storeTaskResults, type StoreDeps } from './store-results';
import type { ReadTask } from './task-repository';

/**
 * Copies of results made by the process whose change moved the task into `storing`, right after
 * that change commits: no `result.store` job, no hop to a worker, no second read of the task.
 *
 * A copy is leased to its process for `leaseMs` from the task's entry into `storing`: it must be
 * over by then (each download gets only the time left), and the results sweep gives a task in
 * `storing` a job only once the lease and SWEEP_MIN_AGE_MS have passed, so a process that dies
 * mid-copy loses nothing and a live one is not doubled. A copy that fails, or runs out of its
 * lease, goes on as a job (with its retries and back-off); so does every copy past `max` at once.
 */
export interface InlineCopies {
  /** Starts copying the outputs of a task that has just entered `storing`; false when it is for a job instead. */
  start(task: ReadTask): boolean;
  /** STORAGE_INLINE_MS: how long a copy is this process's (0: every copy is a job). */
  leaseMs: number;
  /** Waits for the copies in flight (each bounded by the lease). */
  drain(): Promise<void>;
}

export interface InlineCopyDeps extends StoreDeps {
  leaseMs: number;
  /** Copies at once at most (STORAGE_CONCURRENCY). */
  max: number;
  /** Gives tasks their `result.store` job; false when it could not now (the results sweep will). */
  enqueueStores(taskIds: string[]): Promise<boolean>;
}

export function createInlineCopies(deps: InlineCopyDeps): InlineCopies {
  const inFlight = new Set<Promise<void>>();
  const handToJob = async (taskId: string, reason: string) => {
    deps.log?.info({ task_id: taskId, reason }, 'copy of results goes on as a job');
    if (!(await deps.enqueueStores([taskId]).catch(() => false)))
      deps.log?.warn({ task_id: taskId }, 'could not enqueue the copy of results now; the results sweep will');
  };
  return {
    leaseMs: deps.leaseMs,
    start(task) {
      if (deps.leaseMs <= 0 || !task.storingSince || inFlight.size >= deps.max) {
        metrics.resultCopiesStarted.inc({ via: 'job' });
        return false;
      }
      metrics.resultCopiesStarted.inc({ via: 'inline' });
      const deadline = task.storingSince.getTime() + deps.leaseMs;
      const run: Promise<void> = storeTaskResults(deps, task.id, { known: task, deadline })
        .then(
          () => undefined,
          (err: Error) => handToJob(task.id, err.message),
        )
        .finally(() => inFlight.delete(run));
      inFlight.add(run);
      return true;
    },
    async drain() {
      await Promise.allSettled([...inFlight]);
    },
  };
}
