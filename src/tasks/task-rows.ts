import type { Db, Task } from '../db/client';
import { utc } from '../db/client';

/**
 * Raw SQL for the statements every task runs (read, status change, create): Prisma's per-call CPU
 * would be most of their cost. Rows come back with Prisma's field names and
 * types, so the rest of the code sees the same `Task` either way.
 */
const COLUMNS = `id tenant_id request_id external_task_id kind pool state request model_name slot_cost callback_url callback_token
  upstream_task_id status_msg failure_reason result upstream_created_at upstream_updated_at submit_attempts slots_held
  slots_wait_since next_poll_at poll_count cancel_requested_at cancel_reason cancel_message event_seq created_at updated_at submitted_at finished_at`.split(
  /\s+/,
);

/** Prisma's field name of a column (always its camelCase). */
const fieldOf = (column: string) => column.replace(/_(.)/g, (_, c: string) => c.toUpperCase());

/** The select list of a task's columns under Prisma's field names; `of` qualifies them (e.g. a composite's `(c.task).`). */
export const taskColumns = (of = '') => COLUMNS.map((c) => `${of}${c} AS "${fieldOf(c)}"`).join(', ');

export const TASK_COLUMNS = taskColumns();

/**
 * A task as read, with the row version it was read at (Postgres's `xmin`: it changes with every
 * write of the row). A change guarded by it applies only to exactly the row that was read.
 */
export type ReadTask = Task & { version: string };

/** The columns of a ReadTask (for SELECT and RETURNING). */
export const READ_TASK_COLUMNS = `${TASK_COLUMNS}, xmin::text AS version`;

/** A ReadTask's columns but the request body, which reads as null. */
const STATE_COLUMNS = READ_TASK_COLUMNS.replace('request AS "request"', 'NULL::jsonb AS "request"');

/**
 * A task for a status change: everything but its request body, which no status change reads and
 * which can be megabytes (a base64 reference image); only the submission needs it (from its claim).
 */
export async function readTask(db: Db, id: string): Promise<ReadTask | null> {
  const { rows } = await db.sql<ReadTask>(`SELECT ${STATE_COLUMNS} FROM tasks WHERE id = $1`, [id]);
  return rows[0] ?? null;
}

/** The task fields a status change may set (beside state, event_seq and updated_at). */
export interface TaskPatch {
  upstreamTaskId?: string | null;
  statusMsg?: string | null;
  failureReason?: string | null;
  result?: unknown;
  upstreamCreatedAt?: bigint | null;
  upstreamUpdatedAt?: bigint | null;
  slotsHeld?: number;
  nextPollAt?: Date | null;
  pollCount?: number;
  submittedAt?: Date | null;
  finishedAt?: Date | null;
}

const PATCH_COLUMNS: Record<keyof TaskPatch, [column: string, cast: string]> = {
  upstreamTaskId: ['upstream_task_id', 'text'],
  statusMsg: ['status_msg', 'text'],
  failureReason: ['failure_reason', 'text'],
  result: ['result', 'jsonb'],
  upstreamCreatedAt: ['upstream_created_at', 'bigint'],
  upstreamUpdatedAt: ['upstream_updated_at', 'bigint'],
  slotsHeld: ['slots_held', 'int'],
  nextPollAt: ['next_poll_at', 'timestamp'],
  pollCount: ['poll_count', 'int'],
  submittedAt: ['submitted_at', 'timestamp'],
  finishedAt: ['finished_at', 'timestamp'],
};

function sqlValue(key: keyof TaskPatch, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return utc(v);
  if (typeof v === 'bigint') return v.toString();
  return key === 'result' ? JSON.stringify(v) : v;
}

/** `col = $n::type, ...` for the patch's fields, appending their values to `params`. */
export function patchAssignments(patch: TaskPatch, params: unknown[]): string[] {
  const out: string[] = [];
  for (const key of Object.keys(patch) as (keyof TaskPatch)[]) {
    if (patch[key] === undefined) continue;
    const [column, cast] = PATCH_COLUMNS[key];
    params.push(sqlValue(key, patch[key]));
    out.push(`${column} = $${params.length}::${cast}`);
  }
  return out;
}
