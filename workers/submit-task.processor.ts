import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { callbackPath, type CallbackTokens } from '../src/callbacks/callback-token';
import type { Db, Task } from '../src/db/client';
import { kindOf } from '../src/kinds/registry';
import type { AccountClients } from '../src/accounts/account-clients';
import { ENV_ACCOUNT_ID } from '../src/accounts/account-repository';
import type { KlingClient } from '../src/kling/kling-client';
import { UpstreamError } from '../src/kling/upstream-errors';
import type { Logger } from '../src/logger';
import type { SubmitJob } from '../src/queues/catalogue';
import { accountVerdict, type AccountHealth } from '../src/tasks/account-health';
import { claimSlots, unplaceTask, type Claimed, type PoolLimits } from '../src/tasks/task-slots';
import { applyUpstreamUpdate } from '../src/tasks/upstream-update';
import { endIfRequested, failTask } from '../src/tasks/end-task';
import { recordSubmitAttempt } from '../src/tasks/task-repository';
import { type TaskStore } from '../src/tasks/status-machine';

export interface SubmitDeps {
  db: Db;
  store: TaskStore;
  /** Upstream slots of the environment's account per pool (UPSTREAM_CONCURRENCY_IMAGE, _VIDEO); null when this process has no upstream of its own. */
  poolLimits: PoolLimits | null;
  /** ACCOUNT_PROBE_INTERVAL_MS: a pool out of rotation gets one task as a probe this often. */
  probeIntervalMs: number;
  /** What the upstream's answers say about each account (pools out, models refused, breaker). */
  accountHealth: AccountHealth;
  /** First pause of submissions after a 1302/1303; doubles with each round of them in a row, up to a minute. */
  throttlePauseMs: number;
  /** Stops this queue for every worker for `ms` (the upstream said it is full or throttling). */
  pauseSubmissions(ms: number): Promise<void>;
  /** Backpressure: resolves when the deployment's callbacks leave room for one more submission, with the function to call once its claim is done (SubmissionWindow). */
  admitSubmission(): Promise<() => void>;
  /** The upstream client of each account. */
  clients: AccountClients;
  log: Logger;
  publicBaseUrl: string;
  callbackTokens: CallbackTokens;
}

/**
 * Submits one task upstream. Guarded step: load, skip if past `queued`, side effect, conditional
 * advance. Exactly one upstream task per local task: our task id is the upstream external_task_id,
 * and any attempt after the first looks the task up before creating it again.
 *
 * The claim places the task on an account, and every call for it goes through that account. An
 * answer that certainly refused it for a reason of the account's (pack used up, model refused,
 * credential refused, account full) is recorded on the account and the task is placed again,
 * possibly elsewhere; a failure without such an answer (5000-series, timeout) keeps it there, to be
 * looked up there before anything else.
 *
 * A cancel or stage timeout that lands while a submission is under way is only recorded on the task
 * (requestEnd); it is carried out here once the upstream's answer says whether a task exists there:
 * a created one is tracked to its end like any other, a refused or absent one ends the task now.
 */
export function submitTaskProcessor(deps: SubmitDeps) {
  const throttle = createThrottle(deps.throttlePauseMs);
  return async ({ taskId }: SubmitJob, job: Job): Promise<string> => {
    const fields = { task_id: taskId, job_id: job.id, attempt: job.attemptsMade + 1 };
    // The claim is also the read: it skips a task past `queued`, and counts a first attempt in its
    // own commit (a later one is counted only after checking whether an earlier attempt reached
    // the upstream after all). No free slot (or older tasks first): end this job; freed slots or
    // the sweep bring it back. Backpressure comes first: no claim while the callbacks lag behind.
    const claimed = await deps.admitSubmission();
    let claim = await claimSlots(deps.db, taskId, deps.poolLimits, true, deps.probeIntervalMs).finally(claimed);
    // Placed again at most this often in one job: each move follows a refusal by another account.
    for (let moves = 0; ; moves++) {
      const outcome = await submitOnAccount(deps, throttle, claim, job, fields);
      if (outcome !== 'refused') return outcome;
      if (moves >= MAX_MOVES) throw new Error('refused by several accounts in a row; the job retries later');
      claim = await claimSlots(deps.db, taskId, deps.poolLimits, false, deps.probeIntervalMs);
    }
  };
}

/** Accounts one job tries one after the other when each refuses the task. */
const MAX_MOVES = 5;

/** Submits the claimed task through its account; 'refused' when that account refused it and it was taken off it. */
async function submitOnAccount(
  deps: SubmitDeps,
  throttle: Throttle,
  claim: Claimed,
  job: Job,
  fields: Record<string, unknown>,
): Promise<string> {
  if (claim.result === 'missing') {
    deps.log.warn(fields, 'submit job for a task that does not exist; dropped');
    return 'missing';
  }
  if (claim.result === 'wait') return 'waiting-for-slots';
  if (claim.result === 'gone' || !claim.task) return 'already-submitted';
  const task = claim.task;
  const account = task.accountId ?? ENV_ACCOUNT_ID;
  const kling = await deps.clients.clientFor(task.accountId);
  // The create call's request id follows the task into this process's logs. The child logger is
  // built only for a warning: a submission that goes well needs none, and one per job costs CPU for lines never written.
  let child: Logger | undefined;
  const log = () => (child ??= deps.log.child({ ...fields, account, request_id: task.requestId }));
  const first = claim.counted;
  const claimedRow = claim.version ? { ...task, version: claim.version } : undefined;
  for (let resigned = false; ; resigned = true) {
    try {
      // A previous attempt may have reached the upstream and died before recording the answer.
      if (!first && (await adoptExisting(deps, kling, task))) return 'adopted';
      // The row as the claim or the attempt count left it: the upstream's answer applies without a re-read.
      const counted = first && !resigned ? claimedRow : await recordSubmitAttempt(deps.db, task.id);
      // An end requested while an earlier attempt's outcome was unknown: that attempt made nothing.
      if (!first && !counted) return (await endIfRequested(deps.store, task.id, 'submit')) ? 'ended' : 'already-submitted';
      const created = await kling.createTask(kindOf(task.kind).path, upstreamBody(deps, task));
      await applyUpstreamUpdate(deps.store, task.id, created, 'submit', counted);
      deps.log.info({ ...fields, account, request_id: task.requestId, upstream_task_id: created.task_id }, 'submitted upstream');
      throttle.passed();
      await deps.accountHealth.succeeded(account, task.pool);
      return 'submitted';
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      if (err.kind === 'already_exists' && (await adoptExisting(deps, kling, task))) return 'adopted';
      // 1003/1004: the JWT was refused as not yet valid or expired; the client signs a fresh one now.
      if (err.kind === 'auth_expired' && !resigned) continue;
      const verdict = accountVerdict(err, resigned);
      if (verdict && verdict.kind !== 'failure') {
        const pause = verdict.kind === 'full' ? throttle.pause(err.retryAfterSec) : 0;
        await deps.accountHealth.record(verdict, account, task, pause);
        log().warn({ code: err.code, verdict: verdict.kind }, 'the account refused the task; placing it again');
        // Refused, so nothing was made upstream: an end requested meanwhile is carried out now.
        if (await endIfRequested(deps.store, task.id, 'submit')) return 'ended';
        await unplaceTask(deps.db, task.id, task.accountId ?? ENV_ACCOUNT_ID);
        return 'refused';
      }
      if (verdict?.kind === 'failure') await deps.accountHealth.record(verdict, account, task, 0);
      if (err.kind === 'rate_limited') {
        if (await endIfRequested(deps.store, task.id, 'submit')) return 'ended';
        // The upstream throttles requests: pause submissions, keep the task (and its slots) and
        // its attempts; the job returns to the queue and runs again after the pause.
        const pause = throttle.pause(err.retryAfterSec);
        log().warn({ code: err.code, pause_ms: pause }, 'upstream throttling; pausing submissions');
        await deps.pauseSubmissions(pause);
        throw Worker.RateLimitError();
      }
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      // The outcome is unknown (a timeout may hide a created task): the next attempt looks it up
      // first, on the same account, then carries out an end requested meanwhile.
      if (err.retryable && !lastAttempt) {
        log().warn({ kind: err.kind, code: err.code, http: err.httpStatus }, `upstream not available, will retry: ${err.message}`);
        throw err;
      }
      // The upstream may still have created it (e.g. a timeout on the last try): check before failing.
      if (err.retryable && (await adoptExisting(deps, kling, task).catch(() => false))) return 'adopted';
      const reason = err.retryable ? 'upstream_unavailable' : 'upstream_rejected';
      const detail = err.code !== undefined ? ` (code ${err.code})` : '';
      const message = err.retryable
        ? `upstream unavailable after ${job.attemptsMade + 1} attempts: ${err.message}${detail}`
        : `upstream refused the task: ${err.message}${detail}`;
      // An end requested meanwhile keeps its own reason (failTask).
      await failTask(deps.store, task.id, reason, message, 'submit');
      log().warn({ reason, code: err.code }, message);
      throw new UnrecoverableError(message);
    }
  }
}

/**
 * The pause after 1302/1303 answers: it doubles with each round of them in a row, up to a minute,
 * and starts again after a submission goes through. A round is the answers that come back within
 * the pause its first one set: submissions that were under way together say one thing once, so
 * twenty tasks refused at the same moment pause the account as long as one does (counted one by
 * one, they paused it for a minute).
 */
function createThrottle(baseMs: number) {
  let rounds = 0;
  let roundStartedAt = 0;
  let roundPauseMs = 0;
  return {
    pause(retryAfterSec?: number): number {
      const now = Date.now();
      if (rounds === 0 || now - roundStartedAt >= roundPauseMs) {
        rounds++;
        roundStartedAt = now;
        roundPauseMs = Math.min(baseMs * 2 ** Math.min(rounds - 1, 16), 60_000);
      }
      return Math.max(roundPauseMs, (retryAfterSec ?? 0) * 1000);
    },
    passed(): void {
      rounds = 0;
    },
  };
}

type Throttle = ReturnType<typeof createThrottle>;

async function adoptExisting(deps: SubmitDeps, kling: KlingClient, task: Task): Promise<boolean> {
  const existing = await kling.findByExternalId(kindOf(task.kind).path, task.id);
  if (!existing) return false;
  await applyUpstreamUpdate(deps.store, task.id, existing, 'submit');
  deps.log.info({ task_id: task.id, upstream_task_id: existing.task_id }, 'found the upstream task of an earlier attempt');
  return true;
}

/** The stored request, with OUR callback URL and OUR id: the client's own never go upstream. */
function upstreamBody(deps: SubmitDeps, task: Task): Record<string, unknown> {
  return {
    ...(task.request as Record<string, unknown>),
    // Tasks created before tokens were derived keep the token the upstream may already hold.
    callback_url: deps.publicBaseUrl + callbackPath(task.id, task.callbackToken ?? deps.callbackTokens.forTask(task.id)),
    external_task_id: task.id,
  };
}
