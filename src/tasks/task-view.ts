import type { Task } from '../db/client';
import type { TaskResult } from '../kinds/kind';
import { kindOf } from '../kinds/registry';
import type { ClientStatus } from '../kinds/upstream-task';
import { toClientStatus } from './task-state';

/** The single extension key on Kling's task object; everything not Kling's lives under it. */
export const EXTENSION_KEY = 'tracker';

export interface TaskObject {
  task_id: string;
  task_status: ClientStatus;
  task_status_msg: string;
  task_info: { external_task_id?: string };
  /** The kind's result: `{images: [...]}`, `{videos: [...]}`. */
  task_result: TaskResult;
  created_at: number;
  updated_at: number;
  [EXTENSION_KEY]: {
    /** Internal state: queued, submitted, processing, succeed, failed, or canceling, timing_out, canceled, timed_out. */
    state: TrackerState;
    /** Place among tasks waiting to be submitted (queued tasks only, when known). */
    queue_position?: number;
    slots_held: number;
    next_poll_at: number | null;
    failure_reason: string | null;
    upstream_task_id: string | null;
    model_name: string;
    submit_attempts: number;
    submitted_at: number | null;
    finished_at: number | null;
  };
}

/** A task exactly as Kling shows one (GET data, callback body), plus our extension. */
export type TrackerState = Task['state'] | 'canceling' | 'timing_out' | 'canceled' | 'timed_out';

/**
 * The internal state shown under the extension: Kling's `failed` split by why, and a task that is
 * to end (once its upstream task ends) told apart from one that simply runs.
 */
export function trackerState(t: Pick<Task, 'state' | 'failureReason' | 'cancelRequestedAt' | 'cancelReason'>): TrackerState {
  if (t.state === 'failed' && t.failureReason === 'canceled') return 'canceled';
  if (t.state === 'failed' && t.failureReason?.endsWith('_timeout')) return 'timed_out';
  if (t.state !== 'failed' && t.state !== 'succeed' && t.cancelRequestedAt) {
    return t.cancelReason?.endsWith('_timeout') ? 'timing_out' : 'canceling';
  }
  return t.state;
}

export function toTaskObject(t: Task, queuePosition?: number): TaskObject {
  const kind = kindOf(t.kind);
  return {
    task_id: t.id,
    task_status: toClientStatus(t.state),
    task_status_msg: t.statusMsg ?? '',
    task_info: t.externalTaskId ? { external_task_id: t.externalTaskId } : {},
    task_result: kind.taskResult(t.result),
    created_at: t.createdAt.getTime(),
    updated_at: t.updatedAt.getTime(),
    [EXTENSION_KEY]: {
      state: trackerState(t),
      ...(queuePosition !== undefined ? { queue_position: queuePosition } : {}),
      slots_held: t.slotsHeld,
      next_poll_at: t.nextPollAt?.getTime() ?? null,
      failure_reason: t.failureReason,
      upstream_task_id: t.upstreamTaskId,
      model_name: t.modelName,
      ...kind.trackerFields(t),
      submit_attempts: t.submitAttempts,
      submitted_at: t.submittedAt?.getTime() ?? null,
      finished_at: t.finishedAt?.getTime() ?? null,
    },
  };
}

/** The create answer: Kling's shape, `task_status` always "submitted". */
export function toCreatedObject(t: Task) {
  return {
    task_id: t.id,
    task_status: 'submitted' as const,
    task_info: t.externalTaskId ? { external_task_id: t.externalTaskId } : {},
    created_at: t.createdAt.getTime(),
    updated_at: t.updatedAt.getTime(),
  };
}
