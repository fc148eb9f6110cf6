import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { envelope, invalidParameter } from '../errors';
import { IdParam, parseQuery, pathId, queryParam } from './request-input';
import { enqueueDeliveryAttempt } from '../queues/queues';
import { listDeliveries, redeliver, type DeliveryView } from '../webhooks/deliveries.service';
import type { TaskKind } from '../kinds/kind';
import { findTask, listTasks } from '../tasks/task-repository';
import type { Db } from '../db/client';
import type { Logger } from '../logger';
import type { Queues } from '../queues/queues';
import type { CreateTask } from '../tasks/create-task';
import type { TaskStore } from '../tasks/status-machine';
import { parseIdempotencyKey } from '../tasks/idempotency';
import { addWatchRoutes, type WatchDeps } from './task-watch.routes';
import { cancelTask } from '../tasks/end-task';
import { toCreatedObject, toTaskObject } from '../tasks/task-view';

/** What the task routes of a kind need. */
export interface TasksDeps extends WatchDeps {
  db: Db;
  store: TaskStore;
  queues: Queues;
  log: Logger;
}

/** Kling's paging limits. */
export const ListQuery = z.object({
  pageNum: z.coerce.number().int().min(1).max(1000).default(1),
  pageSize: z.coerce.number().int().min(1).max(500).default(30),
});

/** `POST <kind's path>`, after authentication: app.ts mounts it as a route of its own. */
export function createTaskHandler(createTask: CreateTask, kind: TaskKind): RequestHandler {
  return async (req, res) => {
    const idempotencyKey = parseIdempotencyKey(req.get('idempotency-key'));
    const { task, replayed } = await createTask(res.locals.tenant, kind, req.body, { idempotencyKey, requestId: res.locals.requestId });
    if (replayed) res.set('idempotent-replayed', 'true');
    res.json(envelope(res.locals.requestId, toCreatedObject(task)));
  };
}

/** Every other route under a kind's path: reads, long polls, cancel, deliveries. */
export function tasksRouter(deps: TasksDeps, kind: TaskKind): Router {
  const r = Router();

  r.get('/', async (req, res) => {
    // Some Kling clients look a single task up as `?external_task_id=`; answer them like the path form.
    const externalTaskId = queryParam(req, 'external_task_id', IdParam);
    if (externalTaskId !== undefined) {
      const task = await findTask(deps.db, res.locals.tenant.id, kind, externalTaskId);
      res.json(envelope(res.locals.requestId, toTaskObject(task, { view: deps.view })));
      return;
    }
    const { pageNum, pageSize } = parseQuery(req, ListQuery);
    const tasks = await listTasks(deps.db, res.locals.tenant.id, kind, pageNum, pageSize);
    // Not `map(toTaskObject)`: map's index would be taken for the task's queue position.
    const objects = tasks.map((task) => toTaskObject(task, { view: deps.view }));
    res.json(envelope(res.locals.requestId, objects));
  });

  addWatchRoutes(r, deps, kind);

  r.post('/:id/cancel', async (req, res) => {
    const task = await findTask(deps.db, res.locals.tenant.id, kind, pathId(req, 'id'));
    const { result, task: after } = await cancelTask(deps.store, task.id);
    if (result === 'finished') throw invalidParameter(`task: has already finished (${toTaskObject(after).task_status}); nothing to cancel`);
    res.json(envelope(res.locals.requestId, toTaskObject(after, { view: deps.view })));
  });

  r.get('/:id/deliveries', async (req, res) => {
    const task = await findTask(deps.db, res.locals.tenant.id, kind, pathId(req, 'id'));
    res.json(envelope(res.locals.requestId, await listDeliveries(deps.db, task.id)));
  });

  r.post('/:id/deliveries/:webhook_id/redeliver', async (req, res) => {
    const [id, webhookId] = [pathId(req, 'id'), pathId(req, 'webhook_id')];
    const task = await findTask(deps.db, res.locals.tenant.id, kind, id);
    res.json(envelope(res.locals.requestId, await redeliverNow(deps, task.id, webhookId)));
  });

  return r;
}

export type RedeliverDeps = Pick<TasksDeps, 'db' | 'queues' | 'log'>;

/** Starts a new attempt chain of a finished delivery of the task and queues its first attempt; the delivery as listed. */
export async function redeliverNow(deps: RedeliverDeps, taskId: string, webhookId: string): Promise<DeliveryView | undefined> {
  const d = await redeliver(deps.db, taskId, webhookId);
  const queued = await enqueueDeliveryAttempt(deps.queues, d);
  if (!queued) deps.log.warn({ webhook_id: d.id }, 'could not enqueue the redelivery now; the sweep will');
  return (await listDeliveries(deps.db, taskId)).find((v) => v.webhook_id === d.id);
}
