import fs from 'node:fs';
import { placeholderFor } from '../db/client';
import type { Logger } from '../logger';
import { RACED, retryOnRace } from '../lib/retry-on-race';
import { kindOf } from '../kinds/registry';
import { resultOutputs } from '../kinds/result-outputs';
import { metrics } from '../observability/metrics';
import { blobKey, type BlobStore } from '../results/blob-store';
import { DownloadError, downloadOutput, type DownloadLimits } from '../results/download-output';
import { filesField, recordCopiesCte, touchBlob, withLinkIds, type CopiedOutput, type RecordedCopy } from '../results/result-files';
import { transition, type TaskStore } from './status-machine';
import { readTask, type ReadTask } from './task-repository';

/** What copying results needs: the store, the download bounds, and when a task stops waiting for its copies. */
export interface ResultStorage {
  blobs: BlobStore;
  limits: DownloadLimits;
  /**
   * Whether the account a task ran on is on a private network (its base URL): its file URLs are
   * then fetched there too, as the environment's upstream's are with `limits.allowPrivate`.
   */
  accountIsPrivate?(accountId: string): Promise<boolean>;
  /** STORAGE_TIMEOUT_MS, counted from the task's entry into `storing`. */
  timeoutMs: number;
  /** STORAGE_INLINE_MS: a copy is its process's this long from the task's entry into `storing` (src/tasks/inline-copies.ts). */
  inlineMs?: number;
  /** STORAGE_HOLD_MS: ...and no longer than this without a renewal of its hold (src/tasks/sweep-storing-tasks.ts). */
  holdMs?: number;
}

export interface StoreDeps {
  store: TaskStore;
  storage: ResultStorage;
  log?: Logger;
}

export type StoreOutcome = 'stored' | 'replaced' | 'nothing_to_do' | 'upstream_urls';

export interface StoreOptions {
  /** The task as the caller has just read or written it (saves a read). */
  known?: ReadTask;
  /** When the whole copy must be over (ms since the epoch): each download gets only the time left. */
  deadline?: number;
  /** The copy, already under way since before the task entered `storing` (src/tasks/inline-copies.ts). */
  copying?: Promise<RecordedCopy[]>;
}

/** Whether a task's outputs are to be copied: it waits for them, or succeeded without them (upstream fallback, or before copies existed). */
export function needsCopies(t: Pick<ReadTask, 'state' | 'filesState'>): boolean {
  return t.state === 'storing' || (t.state === 'succeed' && (t.filesState === null || t.filesState === 'upstream'));
}

/**
 * Copies every output of a task into the blob store, then shows them: a task in `storing` succeeds
 * (its `succeed` webhook carries the links); one that already succeeded gets its URLs replaced,
 * with no new event and no webhook. A failure is thrown for the job's retry; past
 * STORAGE_TIMEOUT_MS a task still in `storing` first succeeds with the upstream's URLs.
 */
export async function storeTaskResults(deps: StoreDeps, taskId: string, opts: StoreOptions = {}): Promise<StoreOutcome> {
  const task = opts.known ?? (await readTask(deps.store.db, taskId));
  if (!task || !needsCopies(task)) return 'nothing_to_do';
  let copies: RecordedCopy[];
  try {
    copies = await (opts.copying ?? copyTaskOutputs(deps, task, opts.deadline));
  } catch (err) {
    // A failure no retry can cure (the file is gone, not what it says, too large, at an address we
    // may not fetch), or a host that cannot be reached now (no name, refused, no route, no answer),
    // does not keep the client waiting: the task succeeds with the upstream's URLs now. Only for a
    // host unreachable now does the job's retry go on, to replace the links once it answers.
    if (err instanceof DownloadError && err.unreachable && task.state === 'storing') {
      deps.log?.warn(
        { task_id: taskId, reason: err.message, retried: !err.permanent },
        'result cannot be copied now: succeeding with the upstream URLs',
      );
      await succeedWithUpstreamUrls(deps.store, taskId, task);
      if (err.permanent) return 'upstream_urls';
      throw err;
    }
    if (task.state === 'storing' && task.storingSince && Date.now() - task.storingSince.getTime() >= deps.storage.timeoutMs) {
      await succeedWithUpstreamUrls(deps.store, taskId, task);
    }
    throw err;
  }
  return showCopies(deps.store, task, copies);
}

/**
 * Copies every output of a task's result into the blob store, each with the id its links will
 * carry; nothing is shown on the task. A failure is thrown; the objects written before it get their
 * blob rows, so the blob sweep deletes them in time if no later attempt comes to refer to them (one
 * that does finds them present and reuses them).
 */
export async function copyTaskOutputs(
  deps: StoreDeps,
  task: Pick<ReadTask, 'kind' | 'result' | 'accountId'>,
  deadline?: number,
  progress?: CopyProgress,
): Promise<RecordedCopy[]> {
  const kind = kindOf(task.kind);
  const copies: CopiedOutput[] = [];
  try {
    const limits = { ...deps.storage.limits };
    if (!limits.allowPrivate && task.accountId && deps.storage.accountIsPrivate)
      limits.allowPrivate = await deps.storage.accountIsPrivate(task.accountId);
    const outputs = resultOutputs(kind, task.result);
    for (const [i, o] of outputs.entries()) {
      const tracked = i === outputs.length - 1 ? progress : undefined;
      copies.push(await copyOutput(deps, withinDeadline(limits, deadline), kind.outputs.kind, o.index, o.url, tracked));
    }
  } catch (err) {
    await Promise.all(copies.map((c) => touchBlob(deps.store.db, c))).catch(() => undefined);
    throw err;
  }
  return withLinkIds(copies);
}

/** The download limits with no more time than the deadline leaves (none left: the copy fails as timed out). */
function withinDeadline(limits: DownloadLimits, deadline: number | undefined): DownloadLimits {
  if (deadline === undefined) return limits;
  const left = deadline - Date.now();
  if (left <= 0) throw new DownloadError('timeout', 'no time left for this copy here');
  return left < limits.timeoutMs ? { ...limits, timeoutMs: left, cutShort: true } : limits;
}

/** Set by a copy once every output is downloaded: what is left is storing the last one (and, for reused content, its blob's row). */
export interface CopyProgress {
  fetched: boolean;
}

async function copyOutput(
  { store, storage }: StoreDeps,
  limits: DownloadLimits,
  expected: 'image' | 'video',
  index: number,
  url: string,
  progress?: CopyProgress,
): Promise<CopiedOutput> {
  const started = process.hrtime.bigint();
  let got;
  try {
    got = await downloadOutput(url, expected, storage.blobs.spool, limits);
  } catch (err) {
    metrics.resultDownloads.inc({ outcome: err instanceof DownloadError ? err.outcome : 'network' });
    throw err;
  }
  metrics.resultDownloads.inc({ outcome: 'ok' });
  if (progress) progress.fetched = true;
  const copy: CopiedOutput = {
    index,
    outputKind: expected,
    contentType: got.contentType,
    ext: got.ext,
    size: got.size,
    sha256: got.sha256,
    storageKey: blobKey(got.sha256),
    upstreamUrl: url,
  };
  let spooled = got.path;
  try {
    // Content addressing: identical bytes already stored (this task's retry, another task) are not
    // written again. Two copies of the same bytes at the same moment may both write: same key, same bytes.
    if (!(await reusable(store, storage, copy))) {
      spooled = undefined; // putFile moves or deletes the spooled file, whatever it meets
      await (got.path === undefined
        ? storage.blobs.putBytes(copy.storageKey, got.bytes, got.contentType)
        : storage.blobs.putFile(copy.storageKey, got.path, got.contentType));
      metrics.resultBytesStored.inc({ store: storage.blobs.kind }, got.size);
      metrics.resultObjectsStored.inc({ store: storage.blobs.kind });
    }
  } finally {
    if (spooled !== undefined) await fs.promises.rm(spooled, { force: true });
  }
  metrics.resultStoreLatency.observe({ store: storage.blobs.kind }, Number(process.hrtime.bigint() - started) / 1e9);
  return copy;
}

/**
 * Whether the object is in the store already and may be reused: its blob row is then marked stored
 * now (the blob sweep no longer deletes it) and the object looked for again, in case the sweep had
 * just deleted it. New content writes no row here: the statement that records the copy does.
 */
async function reusable(store: TaskStore, storage: ResultStorage, copy: CopiedOutput): Promise<boolean> {
  if (!(await storage.blobs.has(copy.storageKey))) return false;
  await touchBlob(store.db, copy);
  return storage.blobs.has(copy.storageKey);
}

/**
 * Shows the copies on the task and records them (`result_files`) in the same statement; `read` is
 * the task as read before copying, tried first (a change since is a race, and re-read).
 */
async function showCopies(store: TaskStore, read: ReadTask, copies: RecordedCopy[]): Promise<StoreOutcome> {
  const files = filesField(copies);
  const record = (param: (value: unknown) => string) => recordCopiesCte(copies, read.resultsExpireAt, param);
  let known: ReadTask | null = read;
  return retryOnRace(`task ${read.id}`, async (): Promise<StoreOutcome | typeof RACED> => {
    const task = known ?? (await readTask(store.db, read.id));
    known = null;
    if (!task || !needsCopies(task)) return 'nothing_to_do';
    if (task.state === 'storing') {
      const done = await transition(store, task, {
        to: 'succeed',
        data: { filesState: 'stored', files, finishedAt: new Date() },
        source: 'storage',
        with: record,
      });
      return done ? 'stored' : RACED;
    }
    // Already succeeded (its webhook went with the upstream's URLs): the links replace them, quietly.
    const params: unknown[] = [task.id, task.version, JSON.stringify(files)];
    const param = placeholderFor(params);
    const { rows } = await store.db.sql<{ n: number }>(
      `WITH t AS (UPDATE tasks SET files_state = 'stored', files = $3::jsonb, updated_at = now() WHERE id = $1 AND xmin = $2::xid RETURNING id)${record(param)}
       SELECT count(*)::int AS n FROM t`,
      params,
    );
    return rows[0].n === 1 ? 'replaced' : RACED;
  });
}

/**
 * A task that waited too long for its copies succeeds with the upstream's URLs (and says so under
 * `files`); `read` is the task as the caller read it, tried first (a change since is a race, and re-read).
 */
export async function succeedWithUpstreamUrls(store: TaskStore, taskId: string, read?: ReadTask): Promise<boolean> {
  let known = read ?? null;
  return retryOnRace(`task ${taskId}`, async (): Promise<boolean | typeof RACED> => {
    const task = known ?? (await readTask(store.db, taskId));
    known = null;
    if (!task || task.state !== 'storing') return false;
    const done = await transition(store, task, {
      to: 'succeed',
      data: { filesState: 'upstream', finishedAt: new Date() },
      source: 'storage',
    });
    if (!done) return RACED;
    metrics.resultStorageFallbacks.inc({ kind: task.kind });
    store.log?.warn(
      { task_id: taskId },
      'results not copied within STORAGE_TIMEOUT_MS: the task succeeded with the upstream URLs; copying goes on',
    );
    return true;
  });
}
