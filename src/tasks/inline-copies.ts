import { metrics } from '../observability/metrics';
import { DownloadError } from '../results/download-output';
import { touchBlob, type RecordedCopy } from '../results/result-files';
import type { QuickCopy } from './status-machine';
import { copyTaskOutputs, storeTaskResults, type CopyProgress, type StoreDeps } from './store-results';
import { copyHoldMs, holdCopies } from './sweep-storing-tasks';
import type { ReadTask } from './task-repository';

/**
 * Copies of results made by the process that learns of the upstream's success, at once: no
 * `result.store` job, no hop to a worker, no second read of the task.
 *
 * The copy starts before the success is written (`quick`). Done within `quickMs` (for a local store,
 * downloaded within it: its write and sync to the disk are then waited for, up to LOCAL_WRITE_MS),
 * it is written with it: the task goes straight to `succeed` with its links, without `storing` (one
 * change instead of two). Otherwise the task enters `storing` and the copy goes on (`start`, from
 * the commit hook), for `leaseMs` at most from then (each download gets only the time left). While
 * it runs, this process renews its hold on the task (`copy_held_until`, every quarter of
 * `copyHoldMs`), and the results sweep gives a task in `storing` a job only once its hold and
 * SWEEP_MIN_AGE_MS have passed: a live copy is not doubled, and the copy of a process that died
 * mid-copy is taken over within a hold. A copy that fails, or runs out of its lease, goes on as a
 * job (with its retries and back-off); so does every copy past `max` at once.
 */
export interface InlineCopies {
  /**
   * Starts copying the outputs of a task the upstream says succeeded (`result`), before that is
   * written; the copies if they are done within `quickMs`; the failure if the file cannot be had
   * (its host out of reach, or the file gone or refused); else null (a copy still under way, or one
   * that failed otherwise, is picked up by `start` once the task is in `storing`).
   */
  quick(task: ReadTask, result: ReadTask['result']): Promise<QuickCopy>;
  /**
   * Copies the outputs of a task that has just entered `storing` (or goes on with its quick copy),
   * or gives it a `result.store` job when this process does not copy it (as it does not a task that
   * succeeded with the upstream's URLs, whose copy is to be tried again later); resolves once that is decided.
   */
  start(task: ReadTask): Promise<void>;
  /** Waits for the copies in flight (each bounded by the lease). */
  drain(): Promise<void>;
}

/** `storage.inlineMs` (STORAGE_INLINE_MS) is how long a copy is this process's (0: every copy is a job). */
export interface InlineCopyDeps extends StoreDeps {
  /** STORAGE_QUICK_MS: how long a success waits for its copy to be written with it (0: never). */
  quickMs: number;
  /** Copies at once at most (STORAGE_CONCURRENCY). */
  max: number;
  /** Longest wait for a local store's write and sync once the bytes are here (default LOCAL_WRITE_MS); tests widen it. */
  localWriteMs?: number;
  /** Gives tasks their `result.store` job; false when it could not now (the results sweep will). */
  enqueueStores(taskIds: string[]): Promise<boolean>;
}

const LATER = Symbol('later');
/** A copy's failure for want of its file (its host out of reach, or the file gone or refused): no wait in `storing` can help. */
const unreachableCause = (err: unknown): DownloadError | null => (err instanceof DownloadError && err.unreachable ? err : null);
/** Longest wait for a local store's write and sync once the bytes are here: a disk slower than this is stalled, and the copy goes on from `storing`. */
const LOCAL_WRITE_MS = 1000;

/** The copy, or LATER if it is not over within `ms` (a failed copy is null: its failure is handled from `storing`). */
async function within(copying: Promise<RecordedCopy[]>, ms: number): Promise<RecordedCopy[] | null | typeof LATER> {
  let timer: NodeJS.Timeout | undefined;
  const first = await Promise.race([
    copying.catch(() => null),
    new Promise<typeof LATER>((resolve) => (timer = setTimeout(() => resolve(LATER), ms))),
  ]);
  clearTimeout(timer);
  return first;
}

export function createInlineCopies(deps: InlineCopyDeps): InlineCopies {
  const leaseMs = deps.storage.inlineMs ?? 0;
  const inFlight = new Set<Promise<unknown>>();
  /** Quick copies under way, by task, until their task's `start` takes them (or their lease ends). */
  const underWay = new Map<string, Promise<RecordedCopy[]>>();
  const track = (p: Promise<unknown>) => {
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    inFlight.add(settled);
    void settled.finally(() => inFlight.delete(settled));
  };
  const holds = keepHolds(deps, copyHoldMs(deps.storage));
  const handToJob = async (taskId: string) => {
    if (!(await deps.enqueueStores([taskId]).catch(() => false)))
      deps.log?.warn({ task_id: taskId }, 'could not enqueue the copy of results now; the results sweep will');
  };
  return {
    async quick(task, result) {
      if (deps.quickMs <= 0 || leaseMs <= 0 || inFlight.size >= deps.max || underWay.has(task.id)) return null;
      metrics.resultCopiesStarted.inc({ via: 'inline' });
      const progress: CopyProgress = { fetched: false };
      const copying = copyTaskOutputs(deps, { kind: task.kind, result, accountId: task.accountId }, Date.now() + leaseMs, progress);
      track(copying);
      // Known from the start: a repeat of the success meanwhile (a retried callback, a poll) takes the storing path and this copy.
      underWay.set(task.id, copying);
      let first = await within(copying, deps.quickMs);
      // The limit is on fetching: once every byte is here and the store is local, what is left is its
      // write and sync to the disk (waited for as a commit waits for its own), and the copy goes with the success.
      if (first === LATER && progress.fetched && deps.storage.blobs.local)
        first = await within(copying, deps.localWriteMs ?? LOCAL_WRITE_MS);
      const settle = <T>(outcome: T): T => {
        if (underWay.get(task.id) === copying) underWay.delete(task.id);
        return outcome;
      };
      if (first !== LATER && first) return settle(first);
      const failure = first === null ? await copying.then(() => null, unreachableCause) : null;
      if (failure) {
        deps.log?.warn({ task_id: task.id, reason: failure.message }, "result cannot be copied now: succeeding with the upstream's URLs");
        return settle({ unreachable: failure.permanent ? 'for_good' : 'for_now' });
      }
      // Still copying, or failed in a way a retry may cure: `start` takes it once the task is in
      // `storing`, to show it or to hand its failure to a job (the file is not fetched a second
      // time to learn it). If the task never gets there (another writer won), the copy is dropped
      // when its lease ends, its objects marked for the blob sweep (which deletes them in time
      // unless another copy of the task refers to them).
      const abandon = () => {
        if (underWay.get(task.id) !== copying) return;
        underWay.delete(task.id);
        void copying.then((copies) => Promise.all(copies.map((c) => touchBlob(deps.store.db, c)))).catch(() => undefined);
      };
      setTimeout(abandon, leaseMs).unref();
      return null;
    },
    async start(task) {
      const copying = underWay.get(task.id);
      underWay.delete(task.id);
      if (!copying && (task.state !== 'storing' || leaseMs <= 0 || !task.storingSince || inFlight.size >= deps.max)) {
        metrics.resultCopiesStarted.inc({ via: 'job' });
        return handToJob(task.id);
      }
      if (!copying) metrics.resultCopiesStarted.inc({ via: 'inline' });
      const deadline = (task.storingSince ?? new Date()).getTime() + leaseMs;
      const run = storeTaskResults(deps, task.id, { known: task, deadline, copying }).catch((err: Error) => {
        deps.log?.info({ task_id: task.id, reason: err.message }, 'copy of results goes on as a job');
        return handToJob(task.id);
      });
      holds.during(task.id, run);
      track(run);
    },
    async drain() {
      await Promise.allSettled([...inFlight]);
    },
  };
}

/**
 * The holds of this process on the tasks whose copies it is making from `storing`: one statement
 * every quarter of `holdMs` renews them all, while there are any. A renewal that fails (Postgres
 * restarting) is tried again at the next; a hold that runs out meanwhile lets the sweep start a
 * second copy of the same bytes, which the task's version check makes harmless.
 */
function keepHolds(deps: InlineCopyDeps, holdMs: number) {
  const held = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  const renew = () =>
    void holdCopies(deps.store.db, [...held], holdMs).catch((err: Error) =>
      deps.log?.warn({ tasks: held.size, reason: err.message }, 'could not renew the hold on copies under way'),
    );
  return {
    during(taskId: string, copying: Promise<unknown>) {
      held.add(taskId);
      timer ??= setInterval(renew, holdMs / 4).unref();
      const release = () => {
        held.delete(taskId);
        if (held.size || !timer) return;
        clearInterval(timer);
        timer = undefined;
      };
      copying.then(release, release);
    },
  };
}
