import express, { type Express } from 'express';
import type { RedisClient } from './lib/redis-client';
import helmet from 'helmet';
import { docsRouter } from './http/docs.routes';
import { tenantRateLimit } from './http/rate-limit';
import { metricsRouter } from './http/metrics.routes';
import { queueDashboardRouter } from './http/queue-dashboard';
import type { CallbackTokens } from './callbacks/callback-token';
import { callbacksRouter } from './http/callbacks.routes';
import { callbackLoad } from './http/callback-load';
import { markCallbacksCongested } from './queues/callback-pressure';
import type { Db } from './db/client';
import { AppError, errorHandler, notFoundRoute } from './errors';
import { healthRouter } from './http/health.routes';
import { refuseMalformedRequest } from './http/malformed-request';
import { requestId } from './http/request-id';
import { requestLog } from './http/request-log';
import type { AccountClients } from './accounts/account-clients';
import type { Logger } from './logger';
import { enqueueSubmits, type Queues } from './queues/queues';
import type { TaskChanges } from './tasks/task-changes';
import type { TaskStore } from './tasks/status-machine';
import type { SecretBox } from './tenants/secret-box';
import { createTaskHandler, tasksRouter } from './http/tasks.routes';
import { createTaskCreator } from './tasks/create-task';
import { createWatcherLimit } from './http/watcher-limit';
import type { ModelFamily, SlotPool } from './kinds/kind';
import { KINDS } from './kinds/registry';
import { authFailureLimit } from './http/auth-failures';
import { authenticate } from './http/auth.middleware';
import type { TenantCache } from './tenants/tenant-cache';
import { filesRouter } from './http/files.routes';
import type { BlobStore } from './results/blob-store';
import type { FileLinks } from './results/file-links';
import type { TaskViewContext } from './tasks/task-view';
import { consoleRouter } from './http/console/console.routes';

export interface AppDeps {
  db: Db;
  secrets: SecretBox;
  /** Tenants by credential, cached (dropped on any change of the tenants table). */
  tenants: TenantCache;
  store: TaskStore;
  /** WEBHOOK_ALLOW_PRIVATE_NETWORKS: client webhook URLs may point at private addresses. */
  allowPrivateWebhooks: boolean;
  idempotencyTtlMs: number;
  rateLimitPerMinute: number;
  maxUnfinishedTasks: number;
  maxWatchersPerTenant: number;
  sseMaxSeconds: number;
  /** Aborted when the process stops (see TasksDeps). */
  stopping: AbortSignal;
  queuePrefix: string;
  /** ADMIN_TOKEN: enables /metrics and /admin/queues. */
  adminToken?: string;
  changes: TaskChanges;
  redis: RedisClient;
  queues: Queues;
  log: Logger;
  /** The model_name values each family of kinds accepts (KLING_MODELS, KLING_VIDEO_MODELS); the first is the default. */
  models: Readonly<Record<ModelFamily, readonly string[]>>;
  klingWebhookSecret?: string;
  /** The MACs in tasks' callback URLs. */
  callbackTokens: CallbackTokens;
  /** The environment account's slots per pool (UPSTREAM_CONCURRENCY_*): a create is refused when no account could hold it. */
  envPoolLimits: Readonly<Record<SlotPool, number>>;
  /** Upstream clients per account (callbacks that beat their submission's answer are confirmed through them). */
  clients?: AccountClients;
  /** TRUST_PROXY: Express's `trust proxy`, which decides the client address. */
  trustProxy: boolean | number | string;
  authFailuresPerMinute: number;
  jwtMaxLifetimeSec: number;
  /** CALLBACK_MAX_IN_FLIGHT: callbacks handled at once by this process; past it they are shed (503). */
  callbackMaxInFlight: number;
  /** CALLBACK_TARGET_MS: callbacks slower than this slow the deployment's submissions. */
  callbackTargetMs: number;
  /** How result URLs are shown (RESULT_URLS). */
  view?: TaskViewContext;
  /** The durable copies and their signed links (`/v1/files`). */
  blobs?: BlobStore;
  links?: FileLinks;
  /** CONSOLE_SESSION_HOURS. */
  consoleSessionHours: number;
}

/** Kling's 10 MB image as base64 (4/3 of it) plus the rest of the body. */
export const MAX_BODY = '15mb';

/** Builds the HTTP app. Never listens: the caller (server or test) decides where. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  // The client address (failed-authentication limits) is the socket's unless proxies are trusted.
  app.set('trust proxy', deps.trustProxy);
  // No ETag per JSON answer: hashing every body costs CPU on every answer, and Kling's clients do
  // not send If-None-Match (static docs assets keep their own ETags).
  app.set('etag', false);
  app.use(requestId);
  app.use(requestLog(deps.log));
  app.use(refuseMalformedRequest);
  // The upstream's callbacks, two per task, are answered to a server, never shown in a browser:
  // they skip the browser-facing headers below, which the upstream would only have to parse.
  const failures = authFailureLimit({ redis: deps.redis, keyPrefix: deps.queuePrefix, perMinute: deps.authFailuresPerMinute });
  app.use(
    '/callbacks',
    callbacksRouter({
      db: deps.db,
      store: deps.store,
      log: deps.log,
      webhookSecret: deps.klingWebhookSecret,
      tokens: deps.callbackTokens,
      failures,
      clients: deps.clients,
      load: callbackLoad({
        maxInFlight: deps.callbackMaxInFlight,
        targetMs: deps.callbackTargetMs,
        signalCongested: (ms) => void markCallbacksCongested(deps.redis, deps.queuePrefix, ms),
      }),
    }),
  );
  // Result files are embedded by clients' pages (`<img>`, `<video>`): they set their own headers, not helmet's.
  if (deps.blobs && deps.links) app.use(filesRouter({ db: deps.db, blobs: deps.blobs, links: deps.links, log: deps.log }));
  // A JSON API: helmet's defaults (no sniffing, no framing, HSTS, a locked-down CSP) cost little.
  app.use(helmet());
  // The hot routes first: every router mounted before them would be tried on each of their requests.
  // The create, the hottest, is a route of its own: one layer, where a mount took a layer per
  // middleware and then the tasks router's own walk.
  // Credentials first: no body is read (up to 15 MB of JSON) for a request that is refused.
  const json = express.json({ limit: MAX_BODY, strict: false });
  const tenantOnly = [
    authenticate({ tenants: deps.tenants, secrets: deps.secrets, failures, jwtMaxLifetimeSec: deps.jwtMaxLifetimeSec }),
    tenantRateLimit({ redis: deps.redis, keyPrefix: deps.queuePrefix, perMinute: deps.rateLimitPerMinute }),
  ];
  const tasks = { ...deps, watchers: createWatcherLimit(deps.maxWatchersPerTenant) };
  const createTask = createTaskCreator({ ...deps, enqueueSubmits: (ids) => enqueueSubmits(deps.queues, ids) });
  for (const kind of KINDS) app.post(kind.path, requireJsonBody, ...tenantOnly, json, createTaskHandler(createTask, kind));
  for (const kind of KINDS) app.use(kind.path, ...tenantOnly, json, tasksRouter(tasks, kind));
  app.use(
    consoleRouter({
      ...tasks,
      failures,
      createTask,
      keyPrefix: deps.queuePrefix,
      sessionTtlMs: deps.consoleSessionHours * 3_600_000,
      maxBody: MAX_BODY,
    }),
  );
  app.use(healthRouter({ db: deps.db, redis: deps.redis, queuePrefix: deps.queuePrefix }));
  app.use(docsRouter({ models: deps.models }));
  app.use(metricsRouter({ db: deps.db, queues: deps.queues, adminToken: deps.adminToken }));
  app.use(queueDashboardRouter(deps.queues, deps.adminToken));
  app.use(notFoundRoute);
  app.use(errorHandler(deps.log));
  return app;
}

/** A create must be JSON; anything else is refused before authentication touches the DB. */
const requireJsonBody: express.RequestHandler = (req, _res, next) => {
  if (!req.is('application/json'))
    return next(new AppError('unsupported_media_type', 'request body must be JSON (Content-Type: application/json)'));
  next();
};
