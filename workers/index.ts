import type { Worker } from 'bullmq';
import type { CallbackTokens } from '../src/callbacks/callback-token';
import type { Db } from '../src/db/client';
import { analyzeStaleTables } from '../src/db/table-stats';
import type { KindId, StageLimits } from '../src/kinds/kind';
import type { AccountClients } from '../src/accounts/account-clients';
import { startBalanceReads } from '../src/accounts/account-balances';
import { accountSlotTotal } from '../src/accounts/account-repository';
import type { Logger } from '../src/logger';
import { startHeartbeat } from '../src/observability/heartbeat';
import type { CATALOGUE, Handlers, WorkerSettings } from '../src/queues/catalogue';
import type { Queues } from '../src/queues/queues';
import type { RedisTarget } from '../src/queues/redis-connections';
import { failTimedOutTasks } from '../src/tasks/fail-timed-out-tasks';
import { forgetExpiredIdempotencyKeys } from '../src/tasks/idempotency';
import { pruneHistory, type Retention } from '../src/tasks/prune-history';
import { reconcileDueTasks } from '../src/tasks/reconcile-due-tasks';
import type { TaskStore } from '../src/tasks/status-machine';
import { slotsInUse, type PoolLimits } from '../src/tasks/task-slots';
import { SubmissionWindow } from '../src/tasks/submission-window';
import { createAccountHealth } from '../src/tasks/account-health';

/** 5000-series answers or timeouts in a row from one account that open its circuit breaker. */
const BREAKER_FAILURES = 5;
import { callbacksCongested } from '../src/queues/callback-pressure';
import { metrics } from '../src/observability/metrics';
import type { OpenWebhookSecrets } from '../src/tenants/secret-box';
import type { WebhookSettings } from '../src/webhooks/delivery-attempt';
import { enqueueStores } from '../src/queues/queues';
import { expireResults } from '../src/tasks/expire-results';
import { storeTaskResults, type ResultStorage } from '../src/tasks/store-results';
import { copyHoldMs, sweepStoringTasks } from '../src/tasks/sweep-storing-tasks';
import { startCatalogueWorkers } from './catalogue-workers';
import { deliverWebhookProcessor } from './deliver-webhook.processor';
import { keepJobsScheduled } from './job-schedulers';
import { submitTaskProcessor } from './submit-task.processor';
import { sweepDueDeliveries, sweepQueuedTasks } from './sweep-lost-jobs';

export interface WorkerDeps extends WorkerSettings {
  db: Db;
  /** Opens a tenant's sealed webhook secrets (memoized, shared with the process's inline sends). */
  openWebhookSecrets: OpenWebhookSecrets;
  /** The MACs in tasks' callback URLs. */
  callbackTokens: CallbackTokens;
  store: TaskStore;
  webhooks: WebhookSettings;
  queues: Queues;
  /** The upstream client of each account of the pool. */
  clients: AccountClients;
  log: Logger;
  /** Each BullMQ worker opens its own connection to it. */
  redisTarget: RedisTarget;
  publicBaseUrl: string;
  /** A queued task or a pending delivery is swept once it is older than this (SWEEP_MIN_AGE_MS). */
  sweepMinAgeMs: number;
  pollAfterMs: number;
  /** KLING_TIMEOUT_MS: sizes the lease of a reconciliation round. */
  upstreamTimeoutMs: number;
  /** Upstream slots of the environment's account, per pool (UPSTREAM_CONCURRENCY_IMAGE, _VIDEO); null without one. */
  poolLimits: PoolLimits | null;
  /** ACCOUNT_PROBE_INTERVAL_MS. */
  probeIntervalMs: number;
  throttlePauseMs: number;
  /** Each kind's stage limits. */
  limits: ReadonlyMap<KindId, StageLimits>;
  /** How long finished history is kept (TASK_, EVENT_, DELIVERY_RETENTION_DAYS). */
  retention: Retention;
  /** Durable copies of results: the store, download bounds, STORAGE_TIMEOUT_MS. */
  storage: ResultStorage;
}

export interface RunningWorkers {
  workers: Worker[];
  close(): Promise<void>;
}

/** Every job of the catalogue, each handed to the one function that does it. */
function jobHandlers(
  deps: WorkerDeps,
  pauseSubmissions: (ms: number) => Promise<void>,
  window: SubmissionWindow,
): Handlers<typeof CATALOGUE> {
  const accountHealth = createAccountHealth(deps.db, { probeMs: deps.probeIntervalMs, breakerThreshold: BREAKER_FAILURES });
  const submit = submitTaskProcessor({ ...deps, pauseSubmissions, accountHealth, admitSubmission: () => window.admit() });
  const deliver = deliverWebhookProcessor(deps);
  const sweep = { ...deps, minAgeMs: deps.sweepMinAgeMs };
  return {
    submit: { submit: (payload, job) => submit(payload, job) },
    deliver: { deliver: (payload, job, token) => deliver(payload, job, token) },
    store: { store: (payload) => storeTaskResults({ store: deps.store, storage: deps.storage, log: deps.log }, payload.taskId) },
    maintenance: {
      'tasks.fail-timed-out': () => failTimedOutTasks(deps),
      'tasks.requeue': () => sweepQueuedTasks(sweep),
      'deliveries.requeue': () => sweepDueDeliveries(sweep),
      'tasks.reconcile': () => reconcileDueTasks(deps),
      'idempotency-keys.forget': () => forgetExpiredIdempotencyKeys(deps.db, deps.idempotencyTtlMs),
      // Only where autovacuum does not run: statistics for the hot path's plans.
      'tables.analyze': () => analyzeStaleTables(deps.db),
      'history.prune': () => pruneHistory(deps),
      'results.sweep': () =>
        sweepStoringTasks({
          store: deps.store,
          timeoutMs: deps.storage.timeoutMs,
          minAgeMs: deps.sweepMinAgeMs,
          // A copy made by the process that saw the success is its own while that process renews its hold.
          holdMs: copyHoldMs(deps.storage),
          enqueueStores: (ids) => enqueueStores(deps.queues, ids),
        }),
      'results.expire': () => expireResults(deps.db, deps.storage.blobs),
    },
  };
}

/** Every enabled account's slots together, read again every 10 s (accounts are added and changed while workers run). */
function keepSlotTotal(deps: WorkerDeps): { value: number; stop(): void } {
  const envTotal = deps.poolLimits ? Object.values(deps.poolLimits).reduce((a, b) => a + b, 0) : 0;
  // Unknown until the first read (a worker without an upstream of its own has no limits of its own): no bound yet.
  const total = { value: envTotal || Infinity, stop: () => clearInterval(timer) };
  const read = () =>
    void accountSlotTotal(deps.db).then(
      (n) => (total.value = Math.max(n, envTotal)),
      () => undefined,
    );
  const timer = setInterval(read, 10_000);
  timer.unref();
  read();
  return total;
}

/** Starts a worker for every queue of the catalogue, their job schedulers and the heartbeat. */
export function startWorkers(deps: WorkerDeps): RunningWorkers {
  // The submit processor pauses its whole queue on 1302/1303 (worker.rateLimit), hence the late binding.
  let submitWorker: Worker | undefined;
  const pauseSubmissions = async (ms: number) => void (await submitWorker?.rateLimit(ms));
  const slotTotal = keepSlotTotal(deps);
  const window = new SubmissionWindow({
    inFlight: () => slotsInUse(deps.db),
    congested: () => callbacksCongested(deps.queues.redis, deps.queues.settings.prefix),
    // Bounds the window's growth only; every account's own limits stay the claim's.
    max: () => slotTotal.value,
    onChange: (slots) => metrics.submissionWindow.set(slots),
  });
  const workers = startCatalogueWorkers(deps.queues, jobHandlers(deps, pauseSubmissions, window), {
    redisTarget: deps.redisTarget,
    settings: deps,
    log: deps.log,
  });
  submitWorker = workers.byKey.submit;
  const scheduling = keepJobsScheduled(deps.queues, deps, deps.log);
  const heartbeat = startHeartbeat(deps.queues.redis, deps.queues.settings.prefix);
  const balances = startBalanceReads(deps);
  return {
    workers: workers.all,
    async close() {
      scheduling.stop();
      balances.stop();
      slotTotal.stop();
      window.close();
      await heartbeat.stop();
      await workers.close();
    },
  };
}
