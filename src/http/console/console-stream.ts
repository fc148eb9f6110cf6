import type { RequestHandler, Response } from 'express';
import type { Db } from '../../db/client';
import { invalidParameter } from '../../errors';
import { isTerminal } from '../../tasks/task-state';
import { galleryRows, listGallery, unfinishedGallery, type GalleryCursor, type GalleryRow } from '../../tasks/task-gallery';
import { SSE_RETRY_MS, type WatchDeps } from '../task-watch.routes';
import { withPositions } from './console-tasks.routes';

/** What a console stream needs: what the API's event streams need. */
export type StreamDeps = WatchDeps;

/** Unfinished tasks a stream follows at most (MAX_UNFINISHED_TASKS' default). */
const MAX_FOLLOWED = 1000;
/** New tasks sent per read at most; of a larger burst within one read, the newest (a reload shows all). */
const NEW_PER_READ = 100;
/** Fallback read period: creates publish nothing, and a change message can be lost. */
const READ_EVERY_MS = 1000;
/** Reads after change messages are at most this frequent per stream. */
const MIN_READ_GAP_MS = 200;
const KEEPALIVE_MS = 15_000;

/**
 * GET /console/api/stream: one Server-Sent Events stream of everything that happens to the
 * signed-in tenant's tasks: every new task and every change of one not finished, as `task`
 * events carrying the gallery item. Built on the live changes of the task API (a change published
 * on Redis wakes the stream at once) plus a read every second, which shows new tasks (creates
 * publish nothing) and covers lost messages. A read costs two indexed statements: the followed
 * tasks by id, and the tasks created after the newest one seen.
 */
export function consoleStream(deps: StreamDeps): RequestHandler {
  return async (req, res) => {
    const tenant = res.locals.console.tenant;
    if (!tenant) throw invalidParameter('session: the live stream is for tenants; sign in with an API key');
    const endsBy = Date.now() + deps.sseMaxSeconds * 1000;
    deps.watchers.admit(tenant.id, res, endsBy);
    // Followed: each unfinished task's event count as last sent.
    const followed = new Map<string, number>();
    for (const row of await unfinishedGallery(deps.db, tenant.id, MAX_FOLLOWED)) followed.set(row.id, row.eventSeq);
    const [newest] = await listGallery(deps.db, tenant.id, {}, 1);
    let seenUpTo: GalleryCursor | undefined = newest ? { createdAt: newest.createdAt, id: newest.id } : undefined;

    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    res.write(`retry: ${SSE_RETRY_MS}\n\n`);

    const send = async (rows: GalleryRow[]) => {
      for (const item of await withPositions(deps.db, rows, deps.view)) write(res, `event: task\ndata: ${JSON.stringify(item)}\n\n`);
    };
    const read = async () => {
      const changed = (await galleryRows(deps.db, tenant.id, [...followed.keys()])).filter((r) => r.eventSeq !== followed.get(r.id));
      const fresh = seenUpTo ? await newerThan(deps.db, tenant.id, seenUpTo) : await listGallery(deps.db, tenant.id, {}, NEW_PER_READ);
      if (fresh.length) seenUpTo = { createdAt: fresh[0].createdAt, id: fresh[0].id };
      for (const row of [...fresh, ...changed]) {
        if (isTerminal(row.state)) followed.delete(row.id);
        else if (followed.size < MAX_FOLLOWED || followed.has(row.id)) followed.set(row.id, row.eventSeq);
      }
      // Oldest first, so that a page adding each at the top ends newest first.
      await send([...fresh.reverse(), ...changed]);
    };

    let closed = false;
    let reading: Promise<void> | undefined;
    let again = false;
    let lastRead = 0;
    const readSoon = () => {
      if (closed) return;
      if (reading) {
        again = true;
        return;
      }
      const wait = Math.max(0, lastRead + MIN_READ_GAP_MS - Date.now());
      reading = new Promise<void>((r) => setTimeout(r, wait))
        .then(() => {
          lastRead = Date.now();
          return closed ? undefined : read();
        })
        .catch(() => undefined)
        .finally(() => {
          reading = undefined;
          if (again) {
            again = false;
            readSoon();
          }
        });
    };
    const stopListening = deps.changes.listenAll(readSoon);
    const timer = setInterval(readSoon, READ_EVERY_MS);
    const keepalive = setInterval(() => write(res, ': keepalive\n\n'), KEEPALIVE_MS);
    const end = () => {
      if (closed) return;
      closed = true;
      stopListening();
      clearInterval(timer);
      clearInterval(keepalive);
      clearTimeout(limit);
      deps.stopping.removeEventListener('abort', end);
      res.end();
    };
    // Past its time limit the stream ends; EventSource reconnects and starts afresh.
    const limit = setTimeout(end, endsBy - Date.now());
    res.on('close', end);
    deps.stopping.addEventListener('abort', end, { once: true });
    if (deps.stopping.aborted || res.closed) end();
  };
}

function write(res: Response, chunk: string) {
  if (!res.writableEnded && !res.destroyed) res.write(chunk);
}

/** Tasks created after `cursor`, newest first (the gallery's page order, walked the other way). */
async function newerThan(db: Db, tenantId: string, cursor: GalleryCursor): Promise<GalleryRow[]> {
  const rows = await listGallery(db, tenantId, { from: cursor.createdAt }, NEW_PER_READ);
  return rows.filter((r) => r.createdAt > cursor.createdAt || (r.createdAt.getTime() === cursor.createdAt.getTime() && r.id > cursor.id));
}
