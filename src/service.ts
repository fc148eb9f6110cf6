import { setMaxListeners } from 'node:events';
import { redactCredentials } from './lib/redact-url';
import { KINDS } from './kinds/registry';
import { stageLimitsByKind } from './kinds/stage-limits';
import { startWorkers, type RunningWorkers } from '../workers/index';
import type { Config } from './config';
import { createDb, type Db } from './db/client';
import { KlingClient } from './kling/kling-client';
import { createAccountClients } from './accounts/account-clients';
import { syncEnvAccount } from './accounts/account-repository';
import type { Logger } from './logger';
import type { RedisClient } from './lib/redis-client';
import { createQueues, enqueueDeliveries, requeueSubmits, type Queues } from './queues/queues';
import { createProducerConnection, createSubscriberConnection, type RedisTarget } from './queues/redis-connections';
import { nextWaiting } from './tasks/task-slots';

/** How many of the oldest tasks waiting for slots get a fresh try when slots free up. */
const WAKE_BATCH = 20;
import type { TaskStore } from './tasks/status-machine';
import { callbackTokens, type CallbackTokens } from './callbacks/callback-token';
import { createSecretBox, secretsKeyFor, webhookSecretOpener, type SecretBox } from './tenants/secret-box';
import { createInlineDeliveries } from './webhooks/delivery-attempt';
import { createInlineCopies } from './tasks/inline-copies';
import { createTaskChanges, type TaskChanges } from './tasks/task-changes';
import { startServer, type RunningServer } from './server';
import { createTenantCache, type TenantCache } from './tenants/tenant-cache';
import { createBlobStore, resultStorageOf } from './results/blob-stores';
import { createFileLinks } from './results/file-links';
import { startSpoolSweeps } from './results/spool-sweep';
import { enqueueStores } from './queues/queues';
import type { TaskViewContext } from './tasks/task-view';

export interface Service {
  db: Db;
  secrets: SecretBox;
  callbackTokens: CallbackTokens;
  store: TaskStore;
  redis: RedisClient;
  queues: Queues;
  /** "Task X changed" and the waiters of this process. */
  changes: TaskChanges;
  server?: RunningServer;
  workers?: RunningWorkers;
  close(): Promise<void>;
}

/** Settings that are not configuration: production uses the defaults, tests change them. */
export interface ServiceOptions {
  /** Period of the Postgres re-read of the tasks this process's long polls and streams wait for (default 1 s). */
  changeRecheckMs?: number;
}

/**
 * Wires one process: the API, the workers, or both (ROLE). `klingBaseUrl` is where the workers
 * send upstream calls (the configured one, or the built-in simulator's).
 */
export async function startService(config: Config, log: Logger, klingBaseUrl: string, options: ServiceOptions = {}): Promise<Service> {
  // Checked before anything opens: a per-kind variable naming no kind fails the start, leaving no connection behind.
  const stageLimits = stageLimitsByKind(
    KINDS,
    { queueMs: config.QUEUE_TIMEOUT_MS, startMs: config.START_TIMEOUT_MS, totalMs: config.TOTAL_TIMEOUT_MS },
    config.stageLimitOverrides,
  );
  const db = createDb(config.DATABASE_URL);
  const secrets = createSecretBox(secretsKeyFor(config, log));
  const tokens = callbackTokens(secrets.deriveKey('callback-token'));
  const redisTarget: RedisTarget = { url: config.REDIS_URL, cluster: config.REDIS_CLUSTER };
  const redis = createProducerConnection(redisTarget);
  redis.on('error', (err) => log.debug({ err: err.message }, 'redis connection error'));
  const queues = createQueues(redis, {
    prefix: config.QUEUE_PREFIX,
    submitAttempts: config.SUBMIT_ATTEMPTS,
    submitBackoffMs: config.SUBMIT_BACKOFF_MS,
    storageAttempts: config.STORAGE_ATTEMPTS,
    storageBackoffMs: config.STORAGE_RETRY_MS,
  });
  const changes = createTaskChanges({
    db,
    publisher: redis,
    openSubscriber: () => createSubscriberConnection(redisTarget),
    prefix: config.QUEUE_PREFIX,
    recheckMs: options.changeRecheckMs,
  });
  const webhooks = {
    schedule: config.WEBHOOK_RETRY_SCHEDULE_MS,
    timeoutMs: config.WEBHOOK_TIMEOUT_MS,
    allowPrivate: config.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
  };
  // AES-GCM per webhook is wasted work: a tenant's webhook secret changes only on rotation.
  const openWebhookSecrets = webhookSecretOpener(secrets);
  const inline = createInlineDeliveries({ db, queues, log, webhooks, openWebhookSecrets });
  const kling = klingBaseUrl
    ? new KlingClient({
        baseUrl: klingBaseUrl,
        apiKey: config.KLING_API_KEY,
        accessKey: config.KLING_ACCESS_KEY,
        secretKey: config.KLING_SECRET_KEY,
        timeoutMs: config.KLING_TIMEOUT_MS,
      })
    : undefined;
  const envPoolLimits = {
    image: config.UPSTREAM_CONCURRENCY_IMAGE ?? config.UPSTREAM_CONCURRENCY,
    video: config.UPSTREAM_CONCURRENCY_VIDEO,
  };
  const clients = createAccountClients({ db, secrets, envClient: kling, timeoutMs: config.KLING_TIMEOUT_MS });
  const blobs = createBlobStore(config);
  // Links name this service as the upstream and clients reach it; with PORT=0 that is known once it listens.
  let publicBaseUrl = config.PUBLIC_BASE_URL;
  const links = createFileLinks({
    baseUrl: () => publicBaseUrl,
    key: secrets.deriveKey('result-links'),
    ttlMs: config.RESULT_LINK_TTL_S * 1000,
  });
  const storage = resultStorageOf(config, db, blobs);
  // Every process that copies outputs shares the spool: each clears what a dead one left there.
  const stopSpoolSweeps = startSpoolSweeps(blobs.spool.dir, config.STORAGE_DOWNLOAD_TIMEOUT_MS, log);
  const view: TaskViewContext = { resultUrls: config.RESULT_URLS, links };
  const store: TaskStore = {
    db,
    inline,
    log,
    view,
    pollAfterMs: config.UPSTREAM_POLL_AFTER_MS,
    afterCommit: async ({ taskId, deliveryIds, slotsReleased, pool, storeResults, task }) => {
      changes.publish(taskId);
      if (storeResults) await copies.start(task);
      if (deliveryIds.length && !(await enqueueDeliveries(queues, deliveryIds))) {
        log.warn({ delivery_ids: deliveryIds }, 'could not enqueue webhook deliveries now; the sweep will');
      }
      // Slots were freed: the oldest tasks waiting for them in the pool get a job again (the claim
      // keeps their order and places each on an account with room).
      if (slotsReleased) await requeueSubmits(queues, await nextWaiting(db, pool, WAKE_BATCH)).catch(() => undefined);
    },
  };
  const copies = createInlineCopies({
    store,
    storage,
    log,
    quickMs: config.STORAGE_QUICK_MS,
    max: config.STORAGE_CONCURRENCY,
    enqueueStores: (ids) => enqueueStores(queues, ids),
  });
  store.copyQuickly = (task, result) => copies.quick(task, result);
  const service: Service = { db, secrets, callbackTokens: tokens, redis, queues, store, changes, close: async () => undefined };
  const models = { image: config.KLING_MODELS, video: config.KLING_VIDEO_MODELS };
  let tenants: TenantCache | undefined;
  const stopping = new AbortController();
  // Every open long poll and event stream listens to it (each removes its listener when it ends).
  setMaxListeners(0, stopping.signal);
  if (config.ROLE !== 'worker') {
    tenants = createTenantCache({ db, databaseUrl: config.DATABASE_URL, log });
    service.server = await startServer(
      {
        db,
        secrets,
        tenants,
        store,
        redis,
        queues,
        log,
        models,
        klingWebhookSecret: config.KLING_WEBHOOK_SECRET,
        callbackTokens: tokens,
        clients,
        envPoolLimits,
        trustProxy: config.TRUST_PROXY,
        authFailuresPerMinute: config.AUTH_FAILURES_PER_MINUTE,
        jwtMaxLifetimeSec: config.JWT_MAX_LIFETIME_S,
        callbackMaxInFlight: config.CALLBACK_MAX_IN_FLIGHT,
        callbackTargetMs: config.CALLBACK_TARGET_MS,
        allowPrivateWebhooks: config.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
        idempotencyTtlMs: config.IDEMPOTENCY_TTL_HOURS * 3_600_000,
        rateLimitPerMinute: config.RATE_LIMIT_PER_MINUTE,
        maxUnfinishedTasks: config.MAX_UNFINISHED_TASKS,
        maxWatchersPerTenant: config.MAX_WATCHERS_PER_TENANT,
        sseMaxSeconds: config.SSE_MAX_SECONDS,
        stopping: stopping.signal,
        queuePrefix: config.QUEUE_PREFIX,
        adminToken: config.ADMIN_TOKEN,
        changes,
        view,
        blobs,
        links,
        consoleSessionHours: config.CONSOLE_SESSION_HOURS,
      },
      config.PORT,
      config.HOST,
    );
    log.info({ url: service.server.url }, 'API listening');
    if (publicBaseUrl.endsWith(':0')) publicBaseUrl = service.server.url;
  }
  if (config.ROLE !== 'api') {
    await syncEnvAccount(db, kling ? { baseUrl: redactCredentials(klingBaseUrl), slotLimits: envPoolLimits } : null);
    service.workers = startWorkers({
      db,
      openWebhookSecrets,
      callbackTokens: tokens,
      store,
      webhooks,
      queues,
      clients,
      log,
      redisTarget,
      publicBaseUrl: config.PUBLIC_BASE_URL,
      concurrency: config.WORKER_CONCURRENCY,
      lockMs: config.WORKER_LOCK_MS,
      sweepIntervalMs: config.SWEEP_INTERVAL_MS,
      sweepMinAgeMs: config.SWEEP_MIN_AGE_MS,
      reconcileIntervalMs: config.RECONCILE_INTERVAL_MS,
      pollAfterMs: config.UPSTREAM_POLL_AFTER_MS,
      upstreamTimeoutMs: config.KLING_TIMEOUT_MS,
      // Without an upstream of its own, this process leaves the environment's account as it is.
      poolLimits: kling ? envPoolLimits : null,
      probeIntervalMs: config.ACCOUNT_PROBE_INTERVAL_MS,
      throttlePauseMs: config.UPSTREAM_THROTTLE_PAUSE_MS,
      idempotencyTtlMs: config.IDEMPOTENCY_TTL_HOURS * 3_600_000,
      limits: stageLimits,
      retention: {
        taskDays: config.TASK_RETENTION_DAYS,
        eventDays: config.EVENT_RETENTION_DAYS,
        deliveryDays: config.DELIVERY_RETENTION_DAYS,
      },
      storageConcurrency: config.STORAGE_CONCURRENCY,
      storage,
    });
    log.info({ upstream: klingBaseUrl ? redactCredentials(klingBaseUrl) : '(accounts only)' }, 'workers started');
  }
  // Order matters: stop taking requests, let workers finish their jobs, then drop connections.
  service.close = async () => {
    // Long polls and event streams would hold the server's close for up to their limits.
    stopping.abort();
    stopSpoolSweeps();
    await service.server?.close();
    await tenants?.close();
    await service.workers?.close();
    await inline.drain();
    await copies.drain();
    await changes.close();
    // With Redis unreachable a graceful close would wait for a connection that never comes.
    if (redis.status === 'ready') {
      await queues.close();
      await redis.quit().catch(() => redis.disconnect());
    } else {
      queues.disconnect();
      redis.disconnect();
    }
    await db.$disconnect();
  };
  return service;
}
