import express, { Router } from 'express';
import { Webhook } from 'standardwebhooks';
import type { Db } from '../db/client';
import { AppError, envelope, invalidParameter } from '../errors';
import { pathId } from '../http/request-input';
import { UpstreamTask } from '../kling/kling-types';
import { pathOfNul } from '../lib/text';
import { metrics } from '../observability/metrics';
import type { Logger } from '../logger';
import { readTask, type ReadTask } from '../tasks/task-rows';
import { isTerminal } from '../tasks/task-state';
import { applyUpstreamUpdate, type TaskStore } from '../tasks/task-transitions';
import { safeEqual } from '../tenants/tenants.service';

export interface CallbackDeps {
  db: Db;
  store: TaskStore;
  log: Logger;
  /** `whsec_...`: when set, every callback must carry a valid Standard Webhooks signature. */
  webhookSecret?: string;
}

/** Path of a task's upstream callback; the token makes the URL unguessable even if the id leaks. */
export const callbackPath = (taskId: string, token: string) => `/callbacks/kling/${encodeURIComponent(taskId)}/${token}`;

/**
 * Receives the upstream's callbacks. They are a hint, applied through the same status machine as
 * polls: duplicates, reordering and stale updates are harmless. Answers 5xx only when we could not
 * record the update (so a retrying upstream retries) and 2xx for anything recorded or ignorable.
 */
export function callbacksRouter(deps: CallbackDeps): Router {
  const r = Router();
  const verifier = deps.webhookSecret ? new Webhook(deps.webhookSecret) : null;
  const recent = recentRows();
  // The raw bytes are kept for the signature check: it covers the body exactly as sent.
  r.use(express.json({ limit: '1mb', verify: (req, _res, buf) => ((req as unknown as { rawBody: Buffer }).rawBody = buf) }));

  r.post('/kling/:taskId/:token', async (req, res) => {
    const [taskId, token] = [pathId(req, 'taskId'), req.params.token];
    const task = recent.take(taskId) ?? (await readTask(deps.db, taskId));
    // Unknown task and wrong token look the same, so the endpoint reveals nothing about ids.
    if (!task || !safeEqual(task.callbackToken, token)) {
      metrics.callbacks.inc({ outcome: 'unauthorized' });
      throw new AppError('auth_invalid', 'invalid callback token');
    }
    if (verifier) verifySignature(verifier, req);
    const body = UpstreamTask.safeParse(req.body);
    if (!body.success) metrics.callbacks.inc({ outcome: 'invalid' });
    if (!body.success) throw invalidParameter(`body: ${body.error.issues[0].path.join('.') || 'task'}: ${body.error.issues[0].message}`);
    const nul = pathOfNul(body.data);
    if (nul !== null) metrics.callbacks.inc({ outcome: 'invalid' });
    if (nul !== null) throw invalidParameter(`body: ${nul || 'task'}: must not contain the NUL character (\\u0000)`);
    const outcome = await applyUpstreamUpdate(deps.store, task.id, body.data, 'callback', task);
    metrics.callbacks.inc({ outcome: outcome.applied ? 'applied' : outcome.reason });
    const fields = {
      task_id: task.id,
      upstream_status: body.data.task_status,
      request_id: res.locals.requestId,
      // The id of the call that created the task, to follow it across processes.
      task_request_id: task.requestId,
    };
    if (outcome.applied && !isTerminal(outcome.task.state)) recent.keep(outcome.task);
    if (outcome.applied) deps.log.info({ ...fields, state: outcome.task.state }, 'callback applied');
    else if (outcome.reason === 'unknown_status')
      deps.log.warn(fields, 'ALERT: callback with an undocumented task_status; task left as it is');
    else if (outcome.reason === 'task_mismatch') throw invalidParameter('task_id: does not match the upstream task of this callback URL');
    else deps.log.info({ ...fields, reason: outcome.reason }, 'callback ignored');
    res.json(envelope(res.locals.requestId, { applied: outcome.applied }));
  });

  return r;
}

/**
 * The row each applied callback left, for the task's next callback (usually its next status, a
 * moment later), which then needs no read. Safe with any other writer: a change applies only to the
 * row version it was decided from (task-transitions), so a row changed since is read again; and a
 * row only moves forward, so an update a stale row says to ignore, the current row ignores too.
 * Kept without the request body (nothing here reads it, and it can be megabytes); bounded and
 * short-lived, each entry used once.
 */
function recentRows(max = 10_000, ttlMs = 60_000) {
  const rows = new Map<string, { task: ReadTask; at: number }>();
  return {
    take(id: string): ReadTask | undefined {
      const hit = rows.get(id);
      rows.delete(id);
      return hit && Date.now() - hit.at < ttlMs ? hit.task : undefined;
    },
    keep(task: ReadTask): void {
      if (rows.size >= max) rows.delete(rows.keys().next().value!);
      rows.set(task.id, { task: { ...task, request: null }, at: Date.now() });
    },
  };
}

function verifySignature(verifier: Webhook, req: express.Request): void {
  const raw = (req as unknown as { rawBody?: Buffer }).rawBody?.toString('utf8') ?? '';
  try {
    verifier.verify(raw, {
      'webhook-id': req.get('webhook-id') ?? '',
      'webhook-timestamp': req.get('webhook-timestamp') ?? '',
      'webhook-signature': req.get('webhook-signature') ?? '',
    });
  } catch {
    metrics.callbacks.inc({ outcome: 'bad_signature' });
    throw new AppError('auth_invalid', 'invalid or missing webhook signature');
  }
}
