import type { Request, Response, Router } from 'express';
import { z } from 'zod';
import { envelope } from '../errors';
import { pathId, queryParam } from '../http/request-input';
import { queuePosition } from './task-slots';
import { isTerminal } from './task-state';
import { findTask, type TasksDeps } from './tasks.service';
import { toTaskObject } from './task-view';

/** Longest long poll; clients wanting longer simply ask again. */
export const MAX_WAIT_SECONDS = 60;
const SSE_KEEPALIVE_MS = 15_000;

const WAIT_RANGE = `must be a whole number of seconds from 0 to ${MAX_WAIT_SECONDS}`;
export const WaitQuery = z.coerce.number(WAIT_RANGE).int(WAIT_RANGE).min(0, WAIT_RANGE).max(MAX_WAIT_SECONDS, WAIT_RANGE);

/** Aborts when the client goes away, so waiters do not outlive their request. */
function clientGone(req: Request, res: Response): AbortSignal {
  const ctl = new AbortController();
  res.on('close', () => ctl.abort());
  req.on('aborted', () => ctl.abort());
  return ctl.signal;
}

/**
 * GET /{id}?wait=SECONDS (long poll: answers as soon as the task changes, or when the time is up)
 * and GET /{id}/events (Server-Sent Events: the task now, then one event per change of its status,
 * closed after the terminal one). Both tenant-scoped; changes made by any process wake them.
 */
export function addWatchRoutes(r: Router, deps: TasksDeps): void {
  r.get('/:id', async (req, res) => {
    const wait = queryParam(req, 'wait', WaitQuery);
    let task = await findTask(deps.db, res.locals.tenant.id, pathId(req, 'id'));
    if (wait && !isTerminal(task.state)) {
      await deps.changes.waitForChange(task.id, task.eventSeq, wait * 1000, clientGone(req, res));
      task = await findTask(deps.db, res.locals.tenant.id, task.id);
    }
    if (res.writableEnded || res.destroyed) return;
    const position = task.state === 'queued' ? await queuePosition(deps.db, task) : undefined;
    res.json(envelope(res.locals.requestId, toTaskObject(task, position)));
  });

  r.get('/:id/events', async (req, res) => {
    let task = await findTask(deps.db, res.locals.tenant.id, pathId(req, 'id'));
    const gone = clientGone(req, res);
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    let lastStatus: string | undefined;
    const send = () => {
      const object = toTaskObject(task);
      if (object.task_status === lastStatus) return;
      lastStatus = object.task_status;
      res.write(`id: ${task.eventSeq}\nevent: task\ndata: ${JSON.stringify(object)}\n\n`);
    };
    send();
    while (!isTerminal(task.state) && !gone.aborted) {
      const seq = task.eventSeq;
      const changed = await deps.changes.waitForChange(task.id, seq, SSE_KEEPALIVE_MS, gone);
      if (gone.aborted) break;
      if (!changed) {
        res.write(': keepalive\n\n');
        continue;
      }
      task = await findTask(deps.db, res.locals.tenant.id, task.id);
      send();
    }
    res.end();
  });
}
