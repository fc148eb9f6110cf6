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
 * Marks content as being stored now, creating its blob row on first sight. Done before the object
 * is written or found present: the blob sweep deletes only blobs not stored for an hour, so an
 * object this store is about to reuse is not deleted under it.
 */
export async function touchBlob(db: Db, o: Pick<CopiedOutput, 'sha256' | 'size' | 'contentType' | 'storageKey'>): Promise<void> {
  await db.sql(
    `INSERT INTO stored_blobs (sha256, size, content_type, storage_key, created_at, last_stored_at) VALUES ($1, $2, $3, $4, $5::timestamp, $5::timestamp)
     ON CONFLICT (sha256) DO UPDATE SET last_stored_at = EXCLUDED.last_stored_at`,
    [o.sha256, o.size, o.contentType, o.storageKey, utc(new Date())],
  );
}

/** Records a task's copies (again after a retry: a row keeps its id, so links already given stay valid); returns their ids by index. */
export async function recordCopies(db: Db, taskId: string, expiresAt: Date | null, copies: CopiedOutput[]): Promise<Map<number, string>> {
  const ids = new Map<number, string>();
  for (const c of copies) {
    const { rows } = await db.sql<{ id: string }>(
      `INSERT INTO result_files (id, task_id, index, output_kind, content_type, size, sha256, storage_key, upstream_url, stored_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::timestamp, $11::timestamp)
       ON CONFLICT (task_id, index) DO UPDATE SET content_type = EXCLUDED.content_type, size = EXCLUDED.size, sha256 = EXCLUDED.sha256,
         storage_key = EXCLUDED.storage_key, upstream_url = EXCLUDED.upstream_url, stored_at = EXCLUDED.stored_at
       RETURNING id`,
      [
        randomUUID(),
        taskId,
        c.index,
        c.outputKind,
        c.contentType,
        c.size,
        c.sha256,
        c.storageKey,
        c.upstreamUrl,
        utc(new Date()),
        expiresAt ? utc(expiresAt) : null,
      ],
    );
    ids.set(c.index, rows[0].id);
  }
  return ids;
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
