import { z } from 'zod';
import type { Task } from '../db/client';
import type { TaskKind, TaskResult } from '../kinds/kind';
import { kindOf } from '../kinds/registry';
import { resultOutputs, withOutputUrls } from '../kinds/result-outputs';
import { KLING_STATUSES } from '../kinds/upstream-task';
import type { FileLinks, StoredFileRef } from '../results/file-links';
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
  'storing',
  'succeed',
  'failed',
  'canceling',
  'timing_out',
  'canceled',
  'timed_out',
] as const;
/** The internal state under the extension. */
export type TrackerState = (typeof TRACKER_STATES)[number];

const FILES_STATES = ['none', 'storing', 'stored', 'upstream', 'expired'] as const;

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
    files: z
      .object({
        state: z
          .enum(FILES_STATES)
          .describe(
            '`none` (nothing to keep yet), `storing` (being copied), `stored` (task_result links to this service), ' +
              "`upstream` (copying failed; task_result has the upstream's URLs and copying is retried), `expired` (deleted by retention)",
          ),
        expires_at: nullableMillis("When the copies are deleted (the tenant's retention); null: kept"),
        expired_at: nullableMillis('When retention deleted the copies'),
        upstream_urls: z.array(z.string()).describe("The upstream's own URLs of the outputs, in task_result order"),
      })
      .optional()
      .describe('Durable copies of the outputs (RESULT_URLS=mirror only)'),
  })
  .describe("kling-tracker's extension: everything that is not Kling's lives under this one key.");

/**
 * How result URLs are shown (RESULT_URLS): `mirror`, this service's signed links once the copies
 * are stored; `upstream`, the upstream's own (and no `files` under the extension).
 */
export interface TaskViewContext {
  resultUrls: 'mirror' | 'upstream';
  links: FileLinks;
}

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

export interface ViewOptions {
  queuePosition?: number;
  view?: TaskViewContext;
}

export function toTaskObject(t: Task, { queuePosition, view }: ViewOptions = {}): TaskObject {
  const kind = kindOf(t.kind);
  const mirror = view?.resultUrls === 'mirror' ? view : undefined;
  return {
    task_id: t.id,
    task_status: toClientStatus(t.state),
    task_status_msg: t.statusMsg ?? '',
    task_info: t.externalTaskId ? { external_task_id: t.externalTaskId } : {},
    task_result: mirror ? mirroredResult(kind, t, mirror.links) : kind.taskResult(t.result),
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
      ...(mirror ? { files: filesView(kind, t) } : {}),
    },
  };
}

/** The copies' links once stored; nothing while they are copied; the upstream's URLs otherwise. */
function mirroredResult(kind: TaskKind, t: Task, links: FileLinks): TaskResult {
  if (t.state === 'storing') return kind.taskResult(null);
  if (t.filesState !== 'stored' || !Array.isArray(t.files)) return kind.taskResult(t.result);
  const urls = new Map((t.files as unknown as (StoredFileRef & { index: number })[]).map((f) => [f.index, links.url(f)]));
  return withOutputUrls(kind, t.result, urls);
}

function filesView(kind: TaskKind, t: Task): NonNullable<TaskObject['tracker']['files']> {
  const state = t.state === 'storing' ? 'storing' : ((t.filesState ?? 'none') as (typeof FILES_STATES)[number]);
  return {
    state,
    expires_at: t.resultsExpireAt?.getTime() ?? null,
    expired_at: t.filesExpiredAt?.getTime() ?? null,
    upstream_urls: resultOutputs(kind, t.result).map((o) => o.url),
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
