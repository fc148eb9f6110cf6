import type { Task } from '../db/client';
import { RACED, retryOnRace } from '../lib/retry-on-race';
import { transition, type EventSource, type TaskStore } from './status-machine';
import { markEndRequested, readTask, type ReadTask } from './task-repository';
import { isPastUpstream } from './task-state';

export const CANCELED_MESSAGE = 'canceled by the client';

/** Why and how a task is to end from our side (a client's cancel, a stage limit). */
export interface EndRequest {
  /** The failure_reason it ends with (canceled, queue_timeout, ...). */
  reason: string;
  /** The task_status_msg it ends with. */
  message: string;
  source: EventSource;
  /**
   * A task already at the upstream: `track` keeps it until the upstream ends it (a client's cancel:
   * Kling has no cancel), `end` ends it now (a limit on the upstream's own stage).
   */
  atUpstream: 'track' | 'end';
}

/** `ended`: failed now; `ending`: to fail once its upstream task ends; `finished`: had ended already. */
export type EndOutcome = { result: 'ended' | 'ending' | 'finished'; task: Task };

type End = { failureReason: string; statusMsg: string };

/** The reason and message a task ends with once its requested end is carried out (older rows: a cancel). */
export function requestedEnd(task: Task): End {
  return { failureReason: task.cancelReason ?? 'canceled', statusMsg: task.cancelMessage ?? CANCELED_MESSAGE };
}

/** Fails the task as read (guarded by its version): null when another writer got there first. */
function endNow(store: TaskStore, task: ReadTask, end: End, source: EventSource) {
  return transition(store, task, {
    to: 'failed',
    data: { ...end, finishedAt: new Date() },
    source,
    payload: { reason: end.failureReason, message: end.statusMsg },
  });
}

/**
 * Ends a task from our side. A task whose submission may have reached the upstream (queued with an
 * attempt made: the call is in flight, or failed in a way that may hide a created task) is never
 * ended here, whatever `atUpstream` says: the end is recorded, and the submission carries it out
 * once its outcome is known. An upstream task it created is tracked to its end, keeping its slots
 * (the upstream counts them), and its result is discarded; with none, the task ends then. An end
 * requested earlier keeps its own reason. Null for a missing task.
 */
export async function requestEnd(store: TaskStore, taskId: string, end: EndRequest): Promise<EndOutcome | null> {
  return retryOnRace(`task ${taskId}`, async (): Promise<EndOutcome | null | typeof RACED> => {
    const task = await readTask(store.db, taskId);
    if (!task) return null;
    // A task whose outputs are being copied has ended upstream with a success: nothing is left to end.
    if (isPastUpstream(task.state)) return { result: 'finished', task };
    const submissionStarted = task.state !== 'queued' || task.submitAttempts > 0;
    const atUpstream = task.state !== 'queued';
    if (!submissionStarted || (atUpstream && end.atUpstream === 'end')) {
      const ends = task.cancelRequestedAt ? requestedEnd(task) : { failureReason: end.reason, statusMsg: end.message };
      const ended = await endNow(store, task, ends, end.source);
      return ended ? { result: 'ended', task: ended } : RACED;
    }
    if (task.cancelRequestedAt) return { result: 'ending', task };
    // Guarded by the version read: a submission answer or a claim in between is seen on the re-read.
    const marked = await markEndRequested(store.db, task, end.reason, end.message);
    return marked ? { result: 'ending', task: marked } : RACED;
  });
}

/**
 * A client's cancel. Not yet submitted: the task ends now (failed, "canceled by the client"). At
 * the upstream or on its way there: it is to end once the upstream task ends (see requestEnd).
 */
export async function cancelTask(store: TaskStore, taskId: string): Promise<EndOutcome> {
  const outcome = await requestEnd(store, taskId, { reason: 'canceled', message: CANCELED_MESSAGE, source: 'api', atUpstream: 'track' });
  if (!outcome) throw new Error(`task ${taskId}: not found`);
  return outcome;
}

/**
 * Ends a task that has not ended yet as failed, with our own reason, now: for a caller that knows
 * no upstream task is left running for it. An end requested earlier (a cancel, a timeout) keeps its
 * own reason: it is why the task ends. Returns null if the task had already ended.
 */
export async function failTask(
  store: TaskStore,
  taskId: string,
  reason: string,
  message: string,
  source: EventSource,
): Promise<Task | null> {
  return retryOnRace(`task ${taskId}`, async () => {
    const task = await readTask(store.db, taskId);
    if (!task || isPastUpstream(task.state)) return null;
    const ends = task.cancelRequestedAt ? requestedEnd(task) : { failureReason: reason, statusMsg: message };
    return (await endNow(store, task, ends, source)) ?? RACED;
  });
}

/**
 * Carries out a requested end of a task still waiting for its submission, once the caller knows
 * that no upstream task exists for it (the upstream refused it, or a lookup found none). Null when
 * no end is requested or the task is no longer queued.
 */
export async function endIfRequested(store: TaskStore, taskId: string, source: EventSource): Promise<Task | null> {
  return retryOnRace(`task ${taskId}`, async () => {
    const task = await readTask(store.db, taskId);
    if (!task || task.state !== 'queued' || !task.cancelRequestedAt) return null;
    return (await endNow(store, task, requestedEnd(task), source)) ?? RACED;
  });
}
