import type { Task, TaskState } from '../db/client';
import { knownNotToResolve, lookUpAhead } from '../lib/host-lookup';
import { RACED, retryOnRace } from '../lib/retry-on-race';
import { kindOf } from '../kinds/registry';
import { resultOutputs } from '../kinds/result-outputs';
import { withSaneTimes, type UpstreamTask } from '../kinds/upstream-task';
import { metrics } from '../observability/metrics';
import { filesField, recordCopiesCte } from '../results/result-files';
import { requestedEnd } from './end-task';
import { transition, type EventSource, type QuickCopy, type TaskStore } from './status-machine';
import { adoptUpstreamId, readTask, type ReadTask, type TaskPatch } from './task-repository';
import { canTransition, fromUpstreamStatus, isTerminal } from './task-state';

export type ApplyOutcome =
  | { applied: true; task: ReadTask }
  | { applied: false; reason: 'missing' | 'unknown_status' | 'stale' | 'duplicate' | 'not_forward' | 'task_mismatch'; task?: Task };

/**
 * Applies what the upstream says about a task (callback, poll or submit answer). Never moves a task
 * backwards, never leaves a terminal state, ignores updates older than the newest one applied, and
 * treats repeats as harmless no-ops. `known` is the task if the caller has just read it.
 */
export async function applyUpstreamUpdate(
  store: TaskStore,
  taskId: string,
  update: UpstreamTask,
  source: EventSource,
  known?: ReadTask,
): Promise<ApplyOutcome> {
  const { db } = store;
  const target = fromUpstreamStatus(update.task_status);
  const sane = withSaneTimes(update);
  if (sane.ignored.length) {
    store.log?.warn({ task_id: taskId, source, ignored: sane.ignored }, 'ALERT: upstream timestamps outside 2020..now+1d ignored');
  }
  update = sane.task;
  let first = true;
  // Copies made before the change (store.copyQuickly): kept for a retry after a lost race.
  let copied: QuickCopy | undefined;
  return retryOnRace(`task ${taskId}`, async (): Promise<ApplyOutcome | typeof RACED> => {
    const task = first && known ? known : await readTask(db, taskId);
    first = false;
    if (!task) return { applied: false, reason: 'missing' };
    if (task.upstreamTaskId && task.upstreamTaskId !== update.task_id) return { applied: false, reason: 'task_mismatch', task };
    if (!target) return { applied: false, reason: 'unknown_status', task };
    const at = update.updated_at ?? null;
    if (at !== null && task.upstreamUpdatedAt !== null && BigInt(Math.trunc(at)) < task.upstreamUpdatedAt) {
      return { applied: false, reason: 'stale', task };
    }
    // The upstream is done with a task whose outputs are being copied: whatever it says now is a repeat.
    if (task.state === 'storing') return { applied: false, reason: 'duplicate', task };
    if (!canTransition(task.state, target)) {
      // The upstream id may still be news (a callback can beat the submit answer to us).
      if (!task.upstreamTaskId) await adoptUpstreamId(db, task.id, update.task_id);
      return { applied: false, reason: task.state === target ? 'duplicate' : 'not_forward', task };
    }
    // A task to be ended (canceled, or timed out during its submission) fails once the upstream ends.
    const ended = task.cancelRequestedAt && isTerminal(target) ? 'failed' : target;
    const data = upstreamFields(task, update, target);
    // With RESULT_URLS=mirror a success is shown once its outputs are copied (inline-copies.ts,
    // store-results.ts): with this change if the copy is quick, else from `storing` once it is done;
    // unless a copy cannot be made: a host name this process was just told does not exist (the copy
    // would fail for good the moment it started). The task then succeeds with the upstream's URLs now.
    const urls =
      ended === 'succeed' && store.view?.resultUrls === 'mirror'
        ? resultOutputs(kindOf(task.kind), data.result ?? task.result).map((o) => o.url)
        : [];
    const unknownHost = urls.some(knownNotToResolve);
    const copyable = urls.length > 0 && !unknownHost;
    if (copyable && copied === undefined) copied = (await store.copyQuickly?.(task, data.result ?? task.result)) ?? null;
    // Copied quickly enough: the copies go with the success, in the same change. Failed for want of
    // the file (gone, or its host out of reach): the success goes with the upstream's URLs, as for a
    // host name known not to resolve, and a copy that may pass later is retried by a job.
    const shown = copyable && Array.isArray(copied) ? copied : null;
    const unreachable = copyable && copied && !Array.isArray(copied) ? copied.unreachable : null;
    const uncopyable = unknownHost || unreachable !== null;
    const storing = copyable && !shown && !unreachable;
    if (storing) {
      data.storingSince = new Date();
      lookUpAhead(urls);
    }
    if (uncopyable) data.filesState = 'upstream';
    if (shown) Object.assign(data, { filesState: 'stored', files: filesField(shown) });
    const updated = await transition(store, task, {
      to: storing ? 'storing' : ended,
      data,
      source,
      payload: update,
      ...(shown ? { with: (param: (value: unknown) => string) => recordCopiesCte(shown, task.resultsExpireAt, param) } : {}),
      copyLater: unreachable === 'for_now',
    });
    if (!updated) return RACED;
    if (uncopyable) metrics.resultStorageFallbacks.inc({ kind: task.kind });
    // Debug only: the copy that found the name unknown warned, and one does again each time the answer expires.
    if (unknownHost)
      store.log?.debug({ task_id: taskId }, "result host name does not resolve: succeeded with the upstream's URLs without a copy");
    return { applied: true, task: updated };
  });
}

/** The kind's result in an upstream task object; one of another shape is no result (a callback refuses it before). */
function resultOf(task: Task, u: UpstreamTask): unknown {
  if (!u.task_result) return null;
  const kind = kindOf(task.kind);
  const parsed = kind.upstreamResult.safeParse(u.task_result);
  return parsed.success ? kind.readResult(parsed.data) : null;
}

function upstreamFields(task: Task, u: UpstreamTask, target: TaskState): TaskPatch {
  const now = new Date();
  const result = resultOf(task, u);
  const common: TaskPatch = {
    upstreamTaskId: task.upstreamTaskId ?? u.task_id,
    upstreamCreatedAt: u.created_at != null ? BigInt(Math.trunc(u.created_at)) : task.upstreamCreatedAt,
    upstreamUpdatedAt: u.updated_at != null ? BigInt(Math.trunc(u.updated_at)) : task.upstreamUpdatedAt,
    submittedAt: task.submittedAt ?? now,
  };
  // The task was to end while the upstream was working: its outcome is discarded.
  if (task.cancelRequestedAt && isTerminal(target)) return { ...common, ...requestedEnd(task), finishedAt: now };
  return {
    ...common,
    statusMsg: u.task_status_msg ?? task.statusMsg,
    ...(result ? { result } : {}),
    ...(target === 'failed' ? { failureReason: 'upstream_failed' } : {}),
    ...(isTerminal(target) ? { finishedAt: now } : {}),
  };
}
