import { z } from 'zod';

/** The only status values clients ever see, and the upstream's: exactly Kling's. */
export const KLING_STATUSES = ['submitted', 'processing', 'succeed', 'failed'] as const;
export type ClientStatus = (typeof KLING_STATUSES)[number];

/**
 * A task object as the upstream sends it (create answer, query answer, callback body), whatever its
 * kind. Lenient on purpose: Kling documents that every field but task_id and task_status may be
 * missing. `task_result` is read by the task's kind (`TaskKind.readResult`).
 */
export const UpstreamTask = z
  .object({
    task_id: z.string().min(1).max(256),
    task_status: z.string().min(1).max(64),
    task_status_msg: z.string().max(10_000).nullish(),
    task_info: z.object({ external_task_id: z.string().nullish() }).passthrough().nullish(),
    task_result: z.object({}).passthrough().nullish(),
    created_at: z.number().nullish(),
    updated_at: z.number().nullish(),
  })
  .passthrough();
export type UpstreamTask = z.infer<typeof UpstreamTask>;

/** Earliest upstream timestamp believed: Kling's API is younger than this. */
const EARLIEST_UPSTREAM_TIME_MS = Date.UTC(2020, 0, 1);
/** How far ahead of our clock an upstream timestamp may be before it is taken for garbage. */
const MAX_UPSTREAM_CLOCK_AHEAD_MS = 24 * 3600 * 1000;

/**
 * The task with `created_at` / `updated_at` dropped where they cannot be Unix milliseconds of now:
 * before 2020 (seconds, garbage) or more than a day ahead (a far-future value would make every
 * later update look stale). `ignored` names what was dropped, for an alert.
 */
export function withSaneTimes(task: UpstreamTask, now = Date.now()): { task: UpstreamTask; ignored: string[] } {
  const ignored: string[] = [];
  const sane = { ...task };
  for (const field of ['created_at', 'updated_at'] as const) {
    const v = task[field];
    if (v == null) continue;
    if (!Number.isFinite(v) || v < EARLIEST_UPSTREAM_TIME_MS || v > now + MAX_UPSTREAM_CLOCK_AHEAD_MS) {
      ignored.push(`${field}=${v}`);
      delete sane[field];
    }
  }
  return { task: sane, ignored };
}
