import type { Db, Task } from '../db/client';
import { placeholderFor, utc } from '../db/client';
import { TABLE_COLUMNS, fieldOf } from '../db/columns';
import { AppError } from '../errors';
import { KINDS } from '../kinds/registry';
import type { ClientStatus as KlingStatus } from '../kinds/upstream-task';

/**
 * The statements of the console's views of one tenant's tasks, across every kind: a keyset page,
 * a lookup by either id, the live re-reads. None reads the request body (megabytes with a reference
 * image); a row carries the prompt's first characters instead.
 */

/** A task as the gallery lists it: the row without its request, plus the prompt's start. */
export type GalleryRow = Task & { promptExcerpt: string | null };

const EXCERPT_CHARS = 200;
const GALLERY_COLUMNS = [
  ...TABLE_COLUMNS.tasks.filter((c) => c !== 'request').map((c) => `${c} AS "${fieldOf(c)}"`),
  // Not read here (see above); the field stays for the row's type.
  'NULL::jsonb AS "request"',
  `left(request->>'prompt', ${EXCERPT_CHARS}) AS "promptExcerpt"`,
].join(', ');

/** The internal states behind each status a client sees (`queued` shows as `submitted`). */
const STATES_OF: Record<KlingStatus, string[]> = {
  submitted: ['queued', 'submitted'],
  processing: ['processing'],
  succeed: ['succeed'],
  failed: ['failed'],
};
const UNFINISHED = "state IN ('queued', 'submitted', 'processing')";

export interface GalleryFilter {
  status?: KlingStatus;
  kind?: string;
  /** Created at or after. */
  from?: Date;
  /** Created before. */
  to?: Date;
}

/** Where a page starts: the last task of the previous one. */
export interface GalleryCursor {
  createdAt: Date;
  id: string;
}

/**
 * A page of a tenant's tasks, newest first, after `cursor`. Keyset paging: each kind's part walks
 * the index (tenant_id, kind, created_at DESC, id DESC) from the cursor on and stops after `limit`
 * rows, and the parts are merged, so a page costs the same on the first page and the millionth
 * (no OFFSET). The status filter is applied to rows the index yields.
 */
export async function listGallery(
  db: Db,
  tenantId: string,
  filter: GalleryFilter,
  limit: number,
  cursor?: GalleryCursor,
): Promise<GalleryRow[]> {
  const params: unknown[] = [tenantId, limit];
  const param = placeholderFor(params);
  const conditions: string[] = [];
  if (cursor) conditions.push(`(created_at, id) < (${param(utc(cursor.createdAt))}::timestamp, ${param(cursor.id)})`);
  if (filter.from) conditions.push(`created_at >= ${param(utc(filter.from))}::timestamp`);
  if (filter.to) conditions.push(`created_at < ${param(utc(filter.to))}::timestamp`);
  if (filter.status) conditions.push(`state = ANY(${param(STATES_OF[filter.status])}::task_state[])`);
  const kinds = KINDS.filter((k) => !filter.kind || k.id === filter.kind);
  if (!kinds.length) return [];
  const parts = kinds.map(
    (k) =>
      `(SELECT ${GALLERY_COLUMNS} FROM tasks WHERE tenant_id = $1 AND kind = ${param(k.id)}` +
      `${conditions.map((c) => ` AND ${c}`).join('')} ORDER BY created_at DESC, id DESC LIMIT $2)`,
  );
  const { rows } = await db.sql<GalleryRow>(
    `SELECT * FROM (${parts.join(' UNION ALL ')}) t ORDER BY "createdAt" DESC, id DESC LIMIT $2`,
    params,
  );
  return rows;
}

/** The tenant's task by `task_id` or `external_task_id`, any kind; the API's 404 otherwise (also for another tenant's). */
export async function findTenantTask(db: Db, tenantId: string, id: string): Promise<Task> {
  const task =
    (await db.task.findFirst({ where: { id, tenantId } })) ?? (await db.task.findFirst({ where: { tenantId, externalTaskId: id } }));
  if (!task) throw new AppError('not_found', `task not found: ${id.slice(0, 100)}`);
  return task;
}

/** Search by either id: the gallery row of the tenant's task, or none. */
export async function searchGallery(db: Db, tenantId: string, id: string): Promise<GalleryRow[]> {
  const { rows } = await db.sql<GalleryRow>(
    `SELECT ${GALLERY_COLUMNS} FROM tasks WHERE tenant_id = $1 AND id = $2
     UNION ALL SELECT ${GALLERY_COLUMNS} FROM tasks WHERE tenant_id = $1 AND external_task_id = $2 AND id <> $2`,
    [tenantId, id],
  );
  return rows;
}

/** The tenant's tasks that have not ended (through the partial index `tasks_unfinished_idx`), at most `limit`. */
export async function unfinishedGallery(db: Db, tenantId: string, limit: number): Promise<GalleryRow[]> {
  const { rows } = await db.sql<GalleryRow>(`SELECT ${GALLERY_COLUMNS} FROM tasks WHERE tenant_id = $1 AND ${UNFINISHED} LIMIT $2`, [
    tenantId,
    limit,
  ]);
  return rows;
}

/** The tenant's tasks among `ids` as they are now (missing ones are left out). */
export async function galleryRows(db: Db, tenantId: string, ids: string[]): Promise<GalleryRow[]> {
  if (!ids.length) return [];
  const { rows } = await db.sql<GalleryRow>(`SELECT ${GALLERY_COLUMNS} FROM tasks WHERE id = ANY($1::text[]) AND tenant_id = $2`, [
    ids,
    tenantId,
  ]);
  return rows;
}

/** A task's recorded changes, in order (without the upstream payloads). */
export function taskEvents(db: Db, taskId: string) {
  return db.taskEvent.findMany({
    where: { taskId },
    orderBy: { seq: 'asc' },
    select: { seq: true, fromState: true, toState: true, source: true, createdAt: true },
  });
}
