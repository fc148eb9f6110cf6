import { z } from 'zod';
import type { Task } from '../db/client';
import { kindOf } from '../kinds/registry';
import { KLING_STATUSES } from '../kinds/upstream-task';
import { toClientStatus } from './task-state';

/**
 * What clients are shown of a task, declared once: the TypeScript types and the OpenAPI document
 * (src/http/openapi.ts) both come from these schemas.
 */

/** The single extension key on Kling's task object; everything not Kling's lives under it. */
const EXTENSION_KEY = 'tracker';

const millis = (what: string) => z.int().describe(`${what}, Unix time in milliseconds`);
const nullableMillis = (what: string) => millis(what).nullable();

export const TaskStatus = z
  .enum(KLING_STATUSES)
  .describe("Kling's status values, exactly. A task still in our queue shows as `submitted`.");

export const TRACKER_STATES = [
  'queued',
  'submitted',
  'processing',
  'succeed',
  'failed',
  'canceling',
  'timing_out',
  'canceled',
  'timed_out',
] as const;
/** The internal state under the extension. */
export type TrackerState = (typeof TRACKER_STATES)[number];

export const TrackerExtension = z
  .object({
    state: z
      .enum(TRACKER_STATES)
      .describe(
        "Internal state: Kling's `failed` split by why, `queued` for a task not yet sent upstream, and `canceling` / `timing_out` " +
          'for a task that ends once its upstream task ends',
      ),
    queue_position: z.int().optional().describe("Place among its pool's tasks waiting to be submitted (queued tasks only)"),
    slots_held: z.int().describe('Upstream concurrency slots this task holds'),
    next_poll_at: nullableMillis('Next upstream status poll'),
    failure_reason: z
      .string()
      .nullable()
      .describe('upstream_failed, upstream_rejected, upstream_unavailable, canceled, queue_timeout, start_timeout or total_timeout'),
    upstream_task_id: z.string().nullable().describe("Kling's task_id, once submitted"),
    model_name: z.string(),
    n: z.int().optional().describe('Images asked for (image generation only)'),
    submit_attempts: z.int(),
    submitted_at: nullableMillis('Accepted by the upstream'),
    finished_at: nullableMillis('Reached succeed or failed'),
  })
  .describe("kling-tracker's extension: everything that is not Kling's lives under this one key.");

/** Kling's task object (GET answer and webhook body) plus our extension; `task_result` is the kind's. */
export const TaskObject = z.object({
  task_id: z.string().describe("This service's task id"),
  task_status: TaskStatus,
  task_status_msg: z.string().describe('Why a task failed (empty otherwise)'),
  task_info: z.object({ external_task_id: z.string().optional().describe('Your own id, when you gave one') }),
  task_result: z.record(z.string(), z.unknown()).describe("The kind's result: `{images: [...]}`, `{videos: [...]}`"),
  created_at: millis('Created'),
  updated_at: millis('Last change'),
  [EXTENSION_KEY]: TrackerExtension,
});
export type TaskObject = z.infer<typeof TaskObject>;

/** The create answer: Kling's shape, `task_status` always "submitted". */
export const CreatedTask = z.object({
  task_id: z.string(),
  task_status: z.literal('submitted'),
  task_info: z.object({ external_task_id: z.string().optional() }),
  created_at: millis('Created'),
  updated_at: millis('Last change'),
});
export type CreatedTask = z.infer<typeof CreatedTask>;

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

export function toCreatedObject(t: Task): CreatedTask {
  return {
    task_id: t.id,
    task_status: 'submitted',
    task_info: t.externalTaskId ? { external_task_id: t.externalTaskId } : {},
    created_at: t.createdAt.getTime(),
    updated_at: t.updatedAt.getTime(),
  };
}
