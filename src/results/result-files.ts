import { randomUUID } from 'node:crypto';
import type { Db } from '../db/client';
import { utc } from '../db/client';

/** A copied output, as recorded in `result_files`. */
export interface CopiedOutput {
  index: number;
  outputKind: 'image' | 'video';
  contentType: string;
  ext: string;
  size: number;
  sha256: string;
  storageKey: string;
  upstreamUrl: string;
}

/** A stored file as a link is served from it. */
export interface ServedFile {
  contentType: string;
  size: number;
  sha256: string;
  storageKey: string;
  expiresAt: Date | null;
}

/**
 * Marks content as being stored now, creating its blob row on first sight. Done before an object
 * found present is reused: the blob sweep deletes only blobs not stored for an hour, so it is not
 * deleted under this store. (New content gets its row in the statement that records its copies.)
 */
export async function touchBlob(db: Db, o: Pick<CopiedOutput, 'sha256' | 'size' | 'contentType' | 'storageKey'>): Promise<void> {
  await db.sql(
    `INSERT INTO stored_blobs (sha256, size, content_type, storage_key, created_at, last_stored_at) VALUES ($1, $2, $3, $4, $5::timestamp, $5::timestamp)
     ON CONFLICT (sha256) DO UPDATE SET last_stored_at = EXCLUDED.last_stored_at`,
    [o.sha256, o.size, o.contentType, o.storageKey, utc(new Date())],
  );
}

/** A copy as the task will show it: the id its links carry. */
export interface RecordedCopy extends CopiedOutput {
  id: string;
}

/** Gives each copy the id its links will carry. */
export const withLinkIds = (copies: CopiedOutput[]): RecordedCopy[] => copies.map((c) => ({ ...c, id: randomUUID() }));

/** The task's `files` column for its copies: what its links are built from. */
export const filesField = (copies: RecordedCopy[]) => copies.map((c) => ({ index: c.index, id: c.id, ext: c.ext }));

/**
 * The `result_files` rows of a task's copies, as a CTE (`f`) of the statement that shows them on
 * the task: it reads `t`, the task row that statement changed, so nothing is recorded when the task
 * was changed by someone else meanwhile (a race lost records nothing, and cannot replace the rows
 * of a task whose links are out). A row from an attempt whose task never showed it takes the new
 * id: no link was ever given for it.
 *
 * Their `stored_blobs` rows (`sb`) are written whether or not the change applies: an object just
 * written has a row from then on, so the blob sweep deletes it in time if nothing comes to refer to it.
 */
export function recordCopiesCte(copies: RecordedCopy[], expiresAt: Date | null, param: (value: unknown) => string): string {
  const column = <T>(pick: (c: RecordedCopy) => T) => param(copies.map(pick));
  const now = param(utc(new Date()));
  return `, sb AS (
     INSERT INTO stored_blobs (sha256, size, content_type, storage_key, created_at, last_stored_at)
     SELECT DISTINCT ON (c.sha256) c.sha256, c.size, c.content_type, c.storage_key, ${now}::timestamp, ${now}::timestamp
     FROM unnest(${column((c) => c.sha256)}::text[], ${column((c) => c.size)}::bigint[], ${column((c) => c.contentType)}::text[],
                 ${column((c) => c.storageKey)}::text[]) AS c(sha256, size, content_type, storage_key)
     ON CONFLICT (sha256) DO UPDATE SET last_stored_at = EXCLUDED.last_stored_at),
   f AS (
     INSERT INTO result_files (id, task_id, index, output_kind, content_type, size, sha256, storage_key, upstream_url, stored_at, expires_at)
     SELECT c.id, t.id, c.index, c.output_kind, c.content_type, c.size, c.sha256, c.storage_key, c.upstream_url, ${param(utc(new Date()))}::timestamp,
            ${param(expiresAt ? utc(expiresAt) : null)}::timestamp
     FROM t, unnest(${column((c) => c.id)}::text[], ${column((c) => c.index)}::int[], ${column((c) => c.outputKind)}::text[],
                    ${column((c) => c.contentType)}::text[], ${column((c) => c.size)}::bigint[], ${column((c) => c.sha256)}::text[],
                    ${column((c) => c.storageKey)}::text[], ${column((c) => c.upstreamUrl)}::text[])
          AS c(id, index, output_kind, content_type, size, sha256, storage_key, upstream_url)
     ON CONFLICT (task_id, index) DO UPDATE SET id = EXCLUDED.id, content_type = EXCLUDED.content_type, size = EXCLUDED.size,
       sha256 = EXCLUDED.sha256, storage_key = EXCLUDED.storage_key, upstream_url = EXCLUDED.upstream_url, stored_at = EXCLUDED.stored_at)`;
}

/** The file a link names, unless retention has deleted it. */
export async function findServedFile(db: Db, id: string): Promise<ServedFile | null> {
  const { rows } = await db.sql<{ content_type: string; size: string; sha256: string; storage_key: string; expires_at: Date | null }>(
    'SELECT content_type, size::text, sha256, storage_key, expires_at FROM result_files WHERE id = $1',
    [id],
  );
  const r = rows[0];
  if (!r) return null;
  return { contentType: r.content_type, size: Number(r.size), sha256: r.sha256, storageKey: r.storage_key, expiresAt: r.expires_at };
}

/** A task's copy of one output, where it lives and where it came from (the console's task detail). */
export interface StoredFileRow {
  index: number;
  outputKind: string;
  contentType: string;
  size: number;
  sha256: string;
  storageKey: string;
  upstreamUrl: string;
  storedAt: Date;
  expiresAt: Date | null;
}

/** The copies of a task's outputs, in task_result order. */
export async function listTaskFiles(db: Db, taskId: string): Promise<StoredFileRow[]> {
  const { rows } = await db.sql<{
    index: number;
    output_kind: string;
    content_type: string;
    size: string;
    sha256: string;
    storage_key: string;
    upstream_url: string;
    stored_at: Date;
    expires_at: Date | null;
  }>(
    `SELECT index, output_kind, content_type, size::text, sha256, storage_key, upstream_url, stored_at, expires_at
     FROM result_files WHERE task_id = $1 ORDER BY output_kind, index`,
    [taskId],
  );
  return rows.map((r) => ({
    index: r.index,
    outputKind: r.output_kind,
    contentType: r.content_type,
    size: Number(r.size),
    sha256: r.sha256,
    storageKey: r.storage_key,
    upstreamUrl: r.upstream_url,
    storedAt: r.stored_at,
    expiresAt: r.expires_at,
  }));
}
