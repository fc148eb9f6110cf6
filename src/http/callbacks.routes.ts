import { setTimeout as sleep } from 'node:timers/promises';
import express, { Router, type RequestHandler } from 'express';
import { Webhook } from 'standardwebhooks';
import type { Db } from '../db/client';
import { AppError, envelope, invalidParameter } from '../errors';
import { pathId } from './request-input';
import type { AccountClients } from '../accounts/account-clients';
import { kindOf } from '../kinds/registry';
import { UpstreamTask } from '../kinds/upstream-task';
import type { KlingClient } from '../kling/kling-client';
import { UpstreamError } from '../kling/upstream-errors';
import { pathOfNul } from '../lib/text';
import { metrics } from '../observability/metrics';
import type { Logger } from '../logger';
import { readTask, type ReadTask } from '../tasks/task-repository';
import { canTransition, fromUpstreamStatus, isPastUpstream, isTerminal } from '../tasks/task-state';
import { applyUpstreamUpdate } from '../tasks/upstream-update';
import { type TaskStore } from '../tasks/status-machine';
import type { AuthFailures } from './auth-failures';
import type { CallbackTokens } from '../callbacks/callback-token';

export interface CallbackDeps {
  db: Db;
  store: TaskStore;
  log: Logger;
  /** `whsec_...`: when set, every callback must carry a valid Standard Webhooks signature. */
  webhookSecret?: string;
  tokens: CallbackTokens;
  /** Failed authentications per client address: past the limit, tokens that need a read are refused without one. */
  failures: AuthFailures;
  /** Confirms a callback's task_id when the task has no upstream id yet; absent, such callbacks wait for the submission. */
  clients?: AccountClients;
  /** Counts callbacks in flight, signals congestion and sheds past its bound (callbackLoad). */
  load: RequestHandler;
}

/**
 * Receives the upstream's callbacks. They are a hint, applied through the same status machine as
 * polls: duplicates, reordering and stale updates are harmless. Answers 5xx only when we could not
 * record the update (so a retrying upstream retries) and 2xx for anything recorded or ignorable.
 *
 * The token is checked before the body is read or any row: a derived token by arithmetic, a token
 * stored on an older task by one read of that task.
 */
export function callbacksRouter(deps: CallbackDeps): Router {
  const r = Router();
  const verifier = deps.webhookSecret ? new Webhook(deps.webhookSecret) : null;
  const recent = recentRows();
  // The raw bytes are kept for the signature check: it covers the body exactly as sent.
  const json = express.json({ limit: '1mb', verify: (req, _res, buf) => ((req as unknown as { rawBody: Buffer }).rawBody = buf) });

  r.post('/kling/:taskId/:token', deps.load, checkToken(deps), json, async (req, res) => {
    const taskId = pathId(req, 'taskId');
    const task: ReadTask | null = res.locals.callbackTask ?? recent.take(taskId) ?? (await readTask(deps.db, taskId));
    if (!task) throw new AppError('not_found', `task not found: ${taskId.slice(0, 100)}`);
    if (verifier) verifySignature(verifier, req);
    const body = UpstreamTask.safeParse(req.body);
    // When the upstream changed the task, by its clock: how late this callback is (callbackLoad).
    if (body.success && typeof body.data.updated_at === 'number') res.locals.upstreamUpdatedAt = body.data.updated_at;
    if (!body.success) metrics.callbacks.inc({ outcome: 'invalid' });
    if (!body.success) throw invalidParameter(`body: ${body.error.issues[0].path.join('.') || 'task'}: ${body.error.issues[0].message}`);
    // The result must be of the task's kind (images for an image task, videos for a video task).
    const result = body.data.task_result ? kindOf(task.kind).upstreamResult.safeParse(body.data.task_result) : undefined;
    if (result && !result.success) metrics.callbacks.inc({ outcome: 'invalid' });
    if (result && !result.success) {
      throw invalidParameter(`body: task_result.${result.error.issues[0].path.join('.')}: ${result.error.issues[0].message}`);
    }
    const nul = pathOfNul(body.data);
    if (nul !== null) metrics.callbacks.inc({ outcome: 'invalid' });
    if (nul !== null) throw invalidParameter(`body: ${nul || 'task'}: must not contain the NUL character (\\u0000)`);
    const { task: known, update } = await confirmedUpdate(deps, task, body.data);
    // The upstream confirmed a callback that beat the submission's answer, and is further on than it
    // says (it was sent `processing` and has succeeded since): its step goes first, so the client is
    // told of every status the upstream reported, in order.
    const step = update === body.data ? null : earlierStep(body.data, update);
    if (step) await applyUpstreamUpdate(deps.store, task.id, step, 'callback', known);
    const outcome = await applyUpstreamUpdate(deps.store, task.id, update, 'callback', step ? undefined : known);
    metrics.callbacks.inc({ outcome: outcome.applied ? 'applied' : outcome.reason });
    const fields = {
      task_id: task.id,
      upstream_status: body.data.task_status,
      request_id: res.locals.requestId,
      // The id of the call that created the task, to follow it across processes.
      task_request_id: task.requestId,
    };
    if (outcome.applied) recent.keep(outcome.task);
    if (outcome.applied) deps.log.info({ ...fields, state: outcome.task.state }, 'callback applied');
    else if (outcome.reason === 'unknown_status')
      deps.log.warn(fields, 'ALERT: callback with an undocumented task_status; task left as it is');
    else if (outcome.reason === 'task_mismatch') throw invalidParameter('task_id: does not match the upstream task of this callback URL');
    else deps.log.info({ ...fields, reason: outcome.reason }, 'callback ignored');
    res.json(envelope(res.locals.requestId, { applied: outcome.applied }));
  });

  return r;
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Locals {
      /** The task a stored-token check read (callbacks of tasks created before tokens were derived). */
      callbackTask?: ReadTask;
    }
  }
}

/**
 * A derived token is decided by arithmetic; a stored one (tasks created before tokens were derived)
 * costs one read of its task, refused without it for an address over its failed-authentication
 * limit. Unknown task and wrong token look the same, so the endpoint reveals nothing about ids.
 */
function checkToken(deps: CallbackDeps): RequestHandler {
  const refuse = (address: string) => {
    metrics.callbacks.inc({ outcome: 'unauthorized' });
    void deps.failures.record(address);
    return new AppError('auth_invalid', 'invalid callback token');
  };
  return async (req, res, next) => {
    const address = req.ip ?? '';
    const taskId = pathId(req, 'taskId');
    const token = String(req.params.token);
    const check = deps.tokens.check(taskId, token);
    if (check === 'valid') return next();
    const wait = deps.failures.blockedFor(address);
    if (wait > 0) {
      metrics.callbacks.inc({ outcome: 'unauthorized' });
      const retryAfter = String(Math.max(1, Math.ceil(wait / 1000)));
      return next(
        new AppError('rate_limited', 'too many failed callback authentications from this address', { 'retry-after': retryAfter }),
      );
    }
    if (check === 'invalid') return next(refuse(address));
    try {
      const task = await readTask(deps.db, taskId);
      if (!task || !deps.tokens.matchesStored(task.callbackToken, token)) return next(refuse(address));
      res.locals.callbackTask = task;
      next();
    } catch (err) {
      next(err);
    }
  };
}

/**
 * What of a callback is applied, and to the task as last read. A task that already has its upstream
 * id gets the callback as sent (the status machine refuses another task_id). One without (the
 * callback beat the submission's answer) is asked about upstream by its external_task_id, and only
 * the upstream's own answer is applied, once its task_id is the callback's: a forged callback cannot
 * give a task a result. When the upstream cannot confirm it (it does not find the task by that id,
 * or cannot be asked now) and a submission is under way, the callback waits a moment for the
 * submission to record the upstream's id and is then applied as sent; only then is it refused (503).
 */
async function confirmedUpdate(
  deps: CallbackDeps,
  task: ReadTask,
  claimed: UpstreamTask,
): Promise<{ task: ReadTask; update: UpstreamTask }> {
  if (task.upstreamTaskId) return { task, update: claimed };
  const asked = await askUpstream(deps, task);
  if (typeof asked !== 'string') {
    if (asked.task_id === claimed.task_id) return { task, update: asked };
    metrics.callbacks.inc({ outcome: 'task_mismatch' });
    throw invalidParameter('task_id: does not match the upstream task of this callback URL');
  }
  const submitted = await awaitSubmission(deps.db, task);
  if (submitted) return { task: submitted, update: claimed };
  metrics.callbacks.inc({ outcome: 'unconfirmed' });
  throw new AppError('unavailable', `the upstream does not confirm this task yet (${asked}); retry later`, { 'retry-after': '1' });
}

/** The upstream's own view of a task (by its external_task_id, on the account it was placed on), or why there is none. */
async function askUpstream(deps: CallbackDeps, task: ReadTask): Promise<UpstreamTask | string> {
  if (!deps.clients) return 'no upstream to ask in this process';
  let kling: KlingClient;
  try {
    // The account the task was placed on: no other one knows it.
    kling = await deps.clients.clientFor(task.accountId);
  } catch (err) {
    return (err as Error).message;
  }
  try {
    return (await kling.findByExternalId(kindOf(task.kind).path, task.id)) ?? 'not found upstream';
  } catch (err) {
    if (err instanceof UpstreamError) return err.message;
    throw err;
  }
}

/**
 * Pauses between reads of a task whose submission is under way: 775 ms in all. The upstream can
 * call back before its answer to the create has reached the worker (an upstream that finishes at
 * once), which records it a moment later.
 */
const SUBMISSION_PAUSES_MS = [25, 50, 100, 200, 400];

/**
 * The task once its submission has recorded the upstream's id, when a submission was under way for
 * it (a `queued` task with an attempt counted); null when none was, or none recorded an id in time
 * (the worker died, or its answer was lost).
 */
async function awaitSubmission(db: Db, task: ReadTask): Promise<ReadTask | null> {
  if (task.state !== 'queued' || task.submitAttempts === 0) return null;
  for (const pause of SUBMISSION_PAUSES_MS) {
    await sleep(pause);
    const now = await readTask(db, task.id);
    if (now?.upstreamTaskId) return now;
    if (!now || now.state !== 'queued') return null;
  }
  return null;
}

/**
 * The status a confirmed callback reported, as a step before the upstream's own answer: when it is
 * one the task goes through on its way to that answer (`processing` before `succeed`). Made of the
 * upstream's answer with the callback's status and time; never a result, which only the answer gives.
 */
function earlierStep(claimed: UpstreamTask, found: UpstreamTask): UpstreamTask | null {
  const [from, to] = [fromUpstreamStatus(claimed.task_status), fromUpstreamStatus(found.task_status)];
  if (!from || !to || isTerminal(from) || !canTransition(from, to)) return null;
  const at = claimed.updated_at;
  return {
    task_id: found.task_id,
    task_status: claimed.task_status,
    task_info: found.task_info,
    created_at: found.created_at,
    // Its time, when it is one: never after the answer's (which would then look stale).
    updated_at: typeof at === 'number' && (typeof found.updated_at !== 'number' || at <= found.updated_at) ? at : undefined,
  };
}

/**
 * The row each applied callback left, for the task's next callback (usually its next status, a
 * moment later), which then needs no read. Safe with any other writer: a change applies only to the
 * row version it was decided from (status-machine), so a row changed since is read again; and a
 * row only moves forward, so an update a stale row says to ignore, the current row ignores too.
 * Kept without the request body (nothing here reads it, and it can be megabytes); bounded in count
 * and in time, each entry used once. A task the upstream is done with (ended, or its outputs being
 * copied) expects no callback worth a row: it is not kept.
 */
export function recentRows(max = 10_000, ttlMs = 60_000) {
  const rows = new Map<string, { task: ReadTask; at: number }>();
  return {
    take(id: string): ReadTask | undefined {
      const hit = rows.get(id);
      rows.delete(id);
      return hit && Date.now() - hit.at < ttlMs ? hit.task : undefined;
    },
    keep(task: ReadTask): void {
      if (isPastUpstream(task.state)) return;
      const now = Date.now();
      // Oldest first (insertion order): the expired ones and, when full, the oldest go.
      for (const [id, hit] of rows) {
        if (rows.size < max && now - hit.at < ttlMs) break;
        rows.delete(id);
      }
      rows.set(task.id, { task: { ...task, request: null }, at: now });
    },
    get size(): number {
      return rows.size;
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
