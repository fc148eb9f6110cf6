import type { Request, Response, Router } from 'express';
import { z } from 'zod';
import { envelope } from '../errors';
import { pathId, queryParam } from './request-input';
import type { TaskKind } from '../kinds/kind';
import { queuePosition } from '../tasks/task-slots';
import { isTerminal } from '../tasks/task-state';
import { findTask } from '../tasks/task-repository';
import type { Db } from '../db/client';
import type { TaskChanges } from '../tasks/task-changes';
import type { WatcherLimit } from './watcher-limit';
import { toTaskObject, type TaskViewContext } from '../tasks/task-view';

/** Longest long poll; clients wanting longer simply ask again. */
export const MAX_WAIT_SECONDS = 60;
const SSE_KEEPALIVE_MS = 15_000;
/** Reconnection delay given to EventSource clients: prompt, yet at most one reconnect a second per stream. */
export const SSE_RETRY_MS = 1000;

const WAIT_RANGE = `must be a whole number of seconds from 0 to ${MAX_WAIT_SECONDS}`;
export const WaitQuery = z.coerce.number(WAIT_RANGE).int(WAIT_RANGE).min(0, WAIT_RANGE).max(MAX_WAIT_SECONDS, WAIT_RANGE);

/** Aborts when the client goes away, so waiters do not outlive their request, or when the process stops. */
function watchEnds(req: Request, res: Response, stopping: AbortSignal): AbortSignal {
  const ctl = new AbortController();
  const end = () => ctl.abort();
  res.on('close', end);
  req.on('aborted', end);
  // One listener per open watcher on the process's signal, removed as soon as the watcher ends.
  stopping.addEventListener('abort', end, { once: true });
  res.once('close', () => stopping.removeEventListener('abort', end));
  // Gone while the task was read ('close' has already been emitted), or the process already stopping.
  if (res.closed || stopping.aborted) end();
  return ctl.signal;
}

/** What the long poll and the event stream need. */
export interface WatchDeps {
  db: Db;
  changes: TaskChanges;
  /** Long polls plus event streams one tenant holds open in this process, all kinds together (MAX_WATCHERS_PER_TENANT). */
  watchers: WatcherLimit;
  /** An event stream still open after this long is ended; the client reconnects (SSE_MAX_SECONDS). */
  sseMaxSeconds: number;
  /** Aborted when the process stops: long polls answer at once and event streams end (clients reconnect elsewhere). */
  stopping: AbortSignal;
  /** How result URLs are shown (RESULT_URLS); absent: the upstream's. */
  view?: TaskViewContext;
}

/**
 * GET /{id}?wait=SECONDS (long poll: answers as soon as the task changes, or when the time is up)
 * and GET /{id}/events (Server-Sent Events: the task now, then one event per change of its status,
 * closed after the terminal one or after SSE_MAX_SECONDS). Both tenant-scoped; changes made by any
 * process wake them. Those that wait count against the tenant's MAX_WATCHERS_PER_TENANT.
 */
export function addWatchRoutes(r: Router, deps: WatchDeps, kind: TaskKind): void {
  const { watchers } = deps;

  r.get('/:id', async (req, res) => {
    const wait = queryParam(req, 'wait', WaitQuery);
    let task = await findTask(deps.db, res.locals.tenant.id, kind, pathId(req, 'id'));
    if (wait && !isTerminal(task.state)) {
      watchers.admit(res.locals.tenant.id, res, Date.now() + wait * 1000);
      await deps.changes.waitForChange(task.id, task.eventSeq, wait * 1000, watchEnds(req, res, deps.stopping));
      task = await findTask(deps.db, res.locals.tenant.id, kind, task.id);
    }
    if (res.writableEnded || res.destroyed) return;
    const position = task.state === 'queued' ? await queuePosition(deps.db, task) : undefined;
    res.json(envelope(res.locals.requestId, toTaskObject(task, { queuePosition: position, view: deps.view })));
  });

  r.get('/:id/events', async (req, res) => {
    let task = await findTask(deps.db, res.locals.tenant.id, kind, pathId(req, 'id'));
    const gone = watchEnds(req, res, deps.stopping);
    const endsBy = Date.now() + deps.sseMaxSeconds * 1000;
    if (!isTerminal(task.state)) watchers.admit(res.locals.tenant.id, res, endsBy);
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    // First, not last: it then holds however the stream ends (its time limit, a proxy, a restart).
    res.write(`retry: ${SSE_RETRY_MS}\n\n`);
    let lastStatus: string | undefined;
    const send = () => {
      const object = toTaskObject(task, { view: deps.view });
      if (object.task_status === lastStatus) return;
      lastStatus = object.task_status;
      res.write(`id: ${task.eventSeq}\nevent: task\ndata: ${JSON.stringify(object)}\n\n`);
    };
    send();
    try {
      while (!isTerminal(task.state) && !gone.aborted) {
        // Past its time limit the stream ends; the client reconnects and resumes from the task as it is then.
        const left = endsBy - Date.now();
        if (left <= 0) break;
        const seq = task.eventSeq;
        const changed = await deps.changes.waitForChange(task.id, seq, Math.min(SSE_KEEPALIVE_MS, left), gone);
        if (gone.aborted) break;
        if (!changed) {
          res.write(': keepalive\n\n');
          continue;
        }
        task = await findTask(deps.db, res.locals.tenant.id, kind, task.id);
        send();
      }
    } finally {
      // However the loop ends, an error included, the stream ends: the client reconnects, and its place is freed.
      res.end();
    }
  });
}
