import type { Db } from '../db/client';
import { kindOf } from '../kinds/registry';
import type { AccountClients } from '../accounts/account-clients';
import { UpstreamError } from '../kling/upstream-errors';
import type { Logger } from '../logger';
import { claimDuePolls, postponePolls, schedulePoll, type DuePoll } from './task-polling';
import { applyUpstreamUpdate } from './upstream-update';
import { type TaskStore } from './status-machine';

export interface ReconcileDeps {
  db: Db;
  store: TaskStore;
  /** Each task is asked about through the account it was placed on. */
  clients: AccountClients;
  log: Logger;
  pollAfterMs: number;
  /** Longest upstream call (KLING_TIMEOUT_MS): sizes the lease of a round's claimed tasks. */
  upstreamTimeoutMs: number;
}

const BATCH = 50;
/** Upstream queries of one round in flight at once. */
const POLL_CONCURRENCY = 8;

/**
 * Callbacks are a hint; this is the safety net. Asks the upstream about tasks whose callback is
 * overdue and applies the answer through the same status machine. An undocumented status keeps the
 * task pollable and raises an alert in the log; it never fails a task by itself.
 */
export async function reconcileDueTasks(deps: ReconcileDeps): Promise<{ polled: number; applied: number }> {
  // A claimed poll not done within the lease is due again (its reconciler died). New polls start
  // only in the lease's first third, so the last one ends within it even at the upstream's timeout;
  // the tasks left then are handed back at once.
  const leaseMs = 3 * deps.upstreamTimeoutMs;
  const startBefore = Date.now() + deps.upstreamTimeoutMs;
  const due = await claimDuePolls(deps.db, BATCH, leaseMs);
  let applied = 0;
  let next = 0;
  let throttled = false;
  // A few queries at a time: a round of many due tasks (callbacks lost or shed) ends in a few
  // upstream round trips' time, and the upstream never sees more than this from one reconciler.
  const poller = async () => {
    while (next < due.length && !throttled && Date.now() < startBefore) {
      const i = next++;
      const outcome = await pollOne(deps, due[i]);
      if (outcome === 'applied') applied++;
      if (outcome instanceof UpstreamError) {
        throttled = true;
        // Without a Retry-After, one poll interval is a pause proportionate to how often we ask.
        const pause = Math.max((outcome.retryAfterSec ?? 0) * 1000, deps.pollAfterMs);
        deps.log.warn({ code: outcome.code, pause_ms: pause }, 'upstream throttles queries; pausing polls');
        await postponePolls(
          deps.db,
          [due[i], ...due.slice(next)].map((d) => d.id),
          pause,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(POLL_CONCURRENCY, due.length) }, poller));
  if (!throttled && next < due.length)
    await postponePolls(
      deps.db,
      due.slice(next).map((d) => d.id),
      0,
    );
  return { polled: Math.min(next, due.length), applied };
}

/** Polls one task and applies the answer; an UpstreamError is returned when the upstream says to slow down. */
async function pollOne(deps: ReconcileDeps, t: DuePoll): Promise<'applied' | 'unchanged' | UpstreamError> {
  const log = deps.log.child({ task_id: t.id, upstream_task_id: t.upstreamTaskId });
  try {
    const path = kindOf(t.kind).path;
    const kling = await deps.clients.clientFor(t.accountId);
    const upstream = t.upstreamTaskId ? await kling.getTask(path, t.upstreamTaskId) : await kling.findByExternalId(path, t.id);
    if (!upstream) {
      log.warn('ALERT: the upstream does not know a task it accepted; will ask again later');
      await schedulePoll(deps.db, t.id, t.pollCount, deps.pollAfterMs);
      return 'unchanged';
    }
    const outcome = await applyUpstreamUpdate(deps.store, t.id, upstream, 'poll');
    if (outcome.applied) {
      log.info({ state: outcome.task.state }, 'poll brought news the callbacks had not');
      return 'applied';
    }
    if (outcome.reason === 'unknown_status') {
      log.warn({ upstream_status: upstream.task_status }, 'ALERT: upstream reports an undocumented task_status; task left pollable');
    }
    await schedulePoll(deps.db, t.id, t.pollCount, deps.pollAfterMs);
    return 'unchanged';
  } catch (err) {
    if (err instanceof UpstreamError && (err.kind === 'rate_limited' || err.kind === 'concurrency')) return err;
    log.warn({ err: (err as Error).message }, 'poll failed; will ask again later');
    await schedulePoll(deps.db, t.id, t.pollCount, deps.pollAfterMs, ((err as UpstreamError).retryAfterSec ?? 0) * 1000);
    return 'unchanged';
  }
}
