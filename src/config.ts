import fs from 'node:fs';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { SIM_ACCOUNT_NAME } from './lib/sim-account-name';

/** Env var booleans: only the words people actually write. */
const Bool = z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((v) => v === 'true' || v === '1' || v === 'yes');

const Ms = z.coerce.number().int().min(0);

const MsList = z
  .string()
  .regex(/^\d+(,\d+)*$/, 'must be comma-separated milliseconds, e.g. 0,5000,300000')
  .transform((s) => s.split(',').map(Number));

/** A comma-separated list of model names; the first is the default. */
const ModelList = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((s) =>
      s
        .split(',')
        .map((m) => m.trim())
        .filter(Boolean),
    )
    .refine((l) => l.length > 0, 'must name at least one model');

const StageMs = z.coerce.number().int().min(1);

/**
 * `name:key[:image_slots[:video_slots]]`, comma-separated: the accounts one standalone simulator
 * serves, each under `/name`. A slot limit left out (or `-`) is unlimited.
 */
const SimulatedAccountList = z.string().transform((s, ctx) => {
  const specs = [];
  for (const entry of s
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const [name, apiKey, image, video, ...rest] = entry.split(':');
    const slots = (v: string | undefined) => (v === undefined || v === '' || v === '-' ? undefined : Number(v));
    const spec = { name, apiKey, imageSlots: slots(image), videoSlots: slots(video) };
    const badSlots = [spec.imageSlots, spec.videoSlots].some((n) => n !== undefined && !(Number.isInteger(n) && n >= 1));
    if (rest.length > 0 || !SIM_ACCOUNT_NAME.test(name) || !apiKey || badSlots) {
      ctx.addIssue({
        code: 'custom',
        message: `"${entry.split(':')[0]}:…" must be name:key[:image_slots[:video_slots]], name of a-z, 0-9 and -, slots whole numbers >= 1`,
      });
      return z.NEVER;
    }
    specs.push(spec);
  }
  if (new Set(specs.map((a) => a.name)).size !== specs.length) {
    ctx.addIssue({ code: 'custom', message: 'each account name once' });
    return z.NEVER;
  }
  return specs;
});

/** Key-safe characters, with at most one Redis Cluster hash tag: the part of a key in braces picks its slot. */
const HASH_TAGGED_PREFIX = /^[A-Za-z0-9_-]*(\{[A-Za-z0-9_-]+\}[A-Za-z0-9_-]*)?$/;

/** Whole days, at least 1; unset (or empty) keeps the rows forever. */
const RetentionDays = z.coerce.number().int().min(1).optional();

const HttpUrl = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//i.test(u), 'must be an http(s) URL')
  .transform((u) => u.replace(/\/+$/, ''));

/**
 * Express's `trust proxy`: false (the default: the client address is the socket's), true, a number
 * of hops, or a comma-separated list of addresses, CIDR ranges and the names Express knows.
 */
const TrustProxy = z
  .string()
  .refine(
    (v) =>
      /^(true|false|\d+)$/.test(v) ||
      v.split(',').every((p) => {
        const item = p.trim();
        return ['loopback', 'linklocal', 'uniquelocal'].includes(item) || ipaddr.isValid(item) || isCidr(item);
      }),
    'must be true, false, a number of hops, or comma-separated addresses / CIDR ranges / loopback, linklocal, uniquelocal',
  )
  .transform((v): boolean | number | string => (v === 'true' ? true : v === 'false' ? false : /^\d+$/.test(v) ? Number(v) : v));

function isCidr(v: string): boolean {
  try {
    ipaddr.parseCIDR(v);
    return true;
  } catch {
    return false;
  }
}

/**
 * The whole configuration, parsed once at start. Nothing else reads process.env.
 * `.env.example` mirrors this schema.
 */
export const ConfigSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    DATABASE_URL: z.string().min(1).default('postgresql://postgres:postgres@127.0.0.1:5432/kling_tracker'),
    REDIS_URL: z.string().min(1).default('redis://127.0.0.1:6379'),
    /** REDIS_URL is a node (or the configuration endpoint) of a Redis Cluster: every connection is a cluster client. */
    REDIS_CLUSTER: Bool.default(false),
    /**
     * Prefix of every Redis key (BullMQ's and the service's own); lets several deployments (or test
     * files) share one Redis. May hold one hash tag (`{kt}`); on a cluster it must, and gets one.
     */
    QUEUE_PREFIX: z
      .string()
      .regex(HASH_TAGGED_PREFIX, 'must be letters, digits, _ and -, with at most one non-empty {hash tag}, e.g. kt or {kt}')
      .default('kt'),
    PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    HOST: z.string().min(1).default('127.0.0.1'),
    PUBLIC_BASE_URL: HttpUrl.optional(),
    ROLE: z.enum(['all', 'api', 'worker']).default('all'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

    KLING_BASE_URL: HttpUrl.optional(),
    KLING_API_KEY: z.string().min(1).optional(),
    KLING_ACCESS_KEY: z.string().min(1).optional(),
    KLING_SECRET_KEY: z.string().min(1).optional(),
    /** model_name values the image kinds accept; the first is the default. */
    KLING_MODELS: ModelList('kling-v3'),
    /** model_name values the video kinds (text2video, image2video) accept; the first is the default. */
    KLING_VIDEO_MODELS: ModelList('kling-v3'),
    KLING_WEBHOOK_SECRET: z.string().startsWith('whsec_').optional(),
    /** Timeout of every HTTP call to the upstream. */
    KLING_TIMEOUT_MS: Ms.default(30_000),
    /** Port of the built-in simulator when it runs (0: any free port). */
    SIMULATOR_PORT: z.coerce.number().int().min(0).max(65535).default(0),
    /** Standalone simulator (`npm run simulator`): base URL its result images are served under. */
    SIMULATOR_PUBLIC_URL: HttpUrl.optional(),
    /** Simulator: delay from submission to "processing", and from there to the end. */
    SIMULATOR_PROCESSING_MS: Ms.default(1000),
    SIMULATOR_FINISH_MS: Ms.default(3000),
    /** Simulator: share of tasks that end "failed" (0..1), to see failures without a real upstream. */
    SIMULATOR_FAIL_RATE: z.coerce.number().min(0).max(1).default(0),
    /** Standalone simulator: several accounts on one port (`a:key-a:3,b:key-b:5:2`); unset: one account, KLING_* credential. */
    SIMULATOR_ACCOUNTS: SimulatedAccountList.optional(),

    WEBHOOK_ALLOW_PRIVATE_NETWORKS: Bool.default(false),
    /** Deadline of one webhook attempt (connect, send, first KB of the answer). */
    WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(1).default(10_000),
    WEBHOOK_RETRY_SCHEDULE_MS: MsList.default([0, 5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000]),
    UPSTREAM_POLL_AFTER_MS: Ms.default(30_000),
    /** Image slots of the credential (an image task holds `n`); UPSTREAM_CONCURRENCY_IMAGE, when set, wins. */
    UPSTREAM_CONCURRENCY: z.coerce.number().int().min(1).default(10),
    UPSTREAM_CONCURRENCY_IMAGE: z.coerce.number().int().min(1).optional(),
    /** Video slots of the credential (a video task holds 1): Kling counts each resource-pack type apart. */
    UPSTREAM_CONCURRENCY_VIDEO: z.coerce.number().int().min(1).default(10),
    /**
     * An upstream account's pool taken out of rotation by its answer (1100 abnormal, 1101 arrears,
     * 1102 pack used up) gets one real submission as a probe this often; an account whose breaker
     * opened (5000-series answers or timeouts in a row) is a last resort for this long.
     */
    ACCOUNT_PROBE_INTERVAL_MS: z.coerce.number().int().min(100).default(60_000),
    /** First pause of submissions after a 1302/1303 from the upstream; doubles with each round of them in a row (max 1 min). */
    UPSTREAM_THROTTLE_PAUSE_MS: z.coerce.number().int().min(1).default(1_000),
    /**
     * Backpressure: a callback that takes longer than this (answered or still waiting) in any API
     * process slows the deployment's submissions, so the upstream's tasks finish no faster than
     * their callbacks are absorbed.
     */
    CALLBACK_TARGET_MS: z.coerce.number().int().min(10).default(250),
    /** Callbacks one API process handles at once; past it, more are answered 503 with Retry-After at once (polling covers their tasks). */
    CALLBACK_MAX_IN_FLIGHT: z.coerce.number().int().min(1).default(256),
    /** How often due polls are looked for (the reconciler's tick). */
    RECONCILE_INTERVAL_MS: z.coerce.number().int().min(100).default(5_000),
    /**
     * Stage limits: waiting in our queue (incl. for slots), waiting for the upstream to start, and in
     * all. Unset, each kind has its own (images: 1 h, 30 min, 3 h; videos: 1 h, 1 h, 6 h); set, they
     * apply to every kind, and `<NAME>_<KIND>` (e.g. TOTAL_TIMEOUT_MS_TEXT_TO_VIDEO) to one kind.
     */
    QUEUE_TIMEOUT_MS: StageMs.optional(),
    START_TIMEOUT_MS: StageMs.optional(),
    TOTAL_TIMEOUT_MS: StageMs.optional(),
    /** How long in-flight jobs may take to finish after SIGTERM before the process exits anyway. */
    SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).default(25_000),
    /** Attempts of one submission before the task is failed (retryable upstream errors only). */
    SUBMIT_ATTEMPTS: z.coerce.number().int().min(1).default(8),
    /** First retry delay of a submission; doubles each attempt. */
    SUBMIT_BACKOFF_MS: Ms.default(2000),
    /** How often the sweeps run: stage timeouts, re-enqueueing tasks and deliveries without a live job, the statistics check. */
    SWEEP_INTERVAL_MS: z.coerce.number().int().min(100).default(10_000),
    /** A queued task is swept once it is older than this. */
    SWEEP_MIN_AGE_MS: Ms.default(5_000),
    WORKER_CONCURRENCY: z.coerce.number().int().min(1).default(20),
    /** A job whose worker stops renewing its lock for this long (killed process) is run again elsewhere. */
    WORKER_LOCK_MS: z.coerce.number().int().min(500).default(30_000),

    /** Requests per tenant per minute, across all API processes. */
    RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(600),
    /** Failed authentications per client address per minute, across all API processes; then 429 without any lookup. */
    AUTH_FAILURES_PER_MINUTE: z.coerce.number().int().min(1).default(20),
    /** Which proxies in front of the API are trusted to name the client address (X-Forwarded-For); see TrustProxy. */
    TRUST_PROXY: TrustProxy.default(false),
    /** Longest lifetime (exp - nbf, or exp - now) of a client's JWT; Kling's own tokens live 30 minutes. */
    JWT_MAX_LIFETIME_S: z.coerce.number().int().min(1).default(86_400),
    /** Tasks a tenant may have unfinished (queued or at the upstream) at once; more are refused with 429. */
    MAX_UNFINISHED_TASKS: z.coerce.number().int().min(1).default(1000),
    /** Long polls (`?wait=` > 0) plus event streams one tenant may hold open at once, per API process; more are refused with 429. */
    MAX_WATCHERS_PER_TENANT: z.coerce.number().int().min(1).default(100),
    /** An event stream still open after this long is ended; its `retry:` field has the client reconnect and resume. */
    SSE_MAX_SECONDS: z.coerce.number().int().min(1).default(300),
    /** How long an Idempotency-Key is remembered; expired keys are deleted every minute (every TTL if shorter). */
    IDEMPOTENCY_TTL_HOURS: z.coerce.number().positive().default(24),
    /** Base64 of 32 bytes: encrypts tenant secrets at rest. Unset: the key file below is used (and created). */
    SECRETS_KEY: z
      .string()
      .refine((k) => Buffer.from(k, 'base64').length === 32, 'must be base64 of 32 random bytes (openssl rand -base64 32)')
      .optional(),
    SECRETS_KEY_FILE: z.string().min(1).default('.secrets.key'),

    ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
    /** How long a web console sign-in lasts (hours); signing out ends it at once. */
    CONSOLE_SESSION_HOURS: z.coerce.number().positive().max(720).default(12),

    /** A finished task (succeed or failed) is removed this many days after it finished, with all of its rows. */
    TASK_RETENTION_DAYS: RetentionDays,
    /** The events of a finished task are removed this many days after it finished; the task stays. */
    EVENT_RETENTION_DAYS: RetentionDays,
    /** A finished webhook delivery (delivered, gone, dead) of a finished task is removed, with its attempts, this many days after its last attempt. */
    DELIVERY_RETENTION_DAYS: RetentionDays,

    /** `mirror`: clients get this service's signed links to durable copies of results; `upstream`: Kling's own URLs (nothing copied). */
    RESULT_URLS: z.enum(['mirror', 'upstream']).default('mirror'),
    /** Where durable copies are kept when no S3 bucket is configured (created if missing). */
    STORAGE_DIR: z.string().min(1).default('data/results'),
    /** An S3-compatible bucket for the copies instead of STORAGE_DIR (set S3_BUCKET to use one). */
    S3_ENDPOINT: HttpUrl.optional(),
    S3_BUCKET: z.string().min(1).optional(),
    S3_REGION: z.string().min(1).default('us-east-1'),
    S3_ACCESS_KEY_ID: z.string().min(1).optional(),
    S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
    /** Bucket in the path (`endpoint/bucket/key`), as most S3-compatible servers want, instead of the host name. */
    S3_FORCE_PATH_STYLE: Bool.default(false),
    /** Tasks whose outputs one process copies at once: inline (src/tasks/inline-copies.ts), and as result.store jobs in a worker. */
    STORAGE_CONCURRENCY: z.coerce.number().int().min(1).default(16),
    /**
     * How long the process that saw a task succeed may copy its results itself, from the success
     * on (a job takes over past it, and after a crash); 0: every copy is a `result.store` job.
     */
    STORAGE_INLINE_MS: z.coerce.number().int().min(0).default(60_000),
    /**
     * That process holds each such copy this long, renewing the hold every quarter of it while it
     * copies: when it dies mid-copy, a `result.store` job takes over once the hold runs out.
     */
    STORAGE_HOLD_MS: z.coerce.number().int().min(100).default(10_000),
    /**
     * A success waits this long for its copy: done by then, the task succeeds with its links in
     * one change, without `storing` (the callback's answer waits as long at most); 0: never waits.
     */
    STORAGE_QUICK_MS: z.coerce.number().int().min(0).default(100),
    /** A task whose copies keep failing this long after the upstream succeeded succeeds with the upstream's URLs (copying goes on). */
    STORAGE_TIMEOUT_MS: z.coerce.number().int().min(1).default(300_000),
    /** Largest output copied (bytes); a larger one fails its copy. */
    STORAGE_MAX_BYTES: z.coerce
      .number()
      .int()
      .min(1)
      .default(1024 * 1024 * 1024),
    /** Deadline of one output's download from the upstream, connect to last byte. */
    STORAGE_DOWNLOAD_TIMEOUT_MS: z.coerce.number().int().min(1).default(300_000),
    /** Attempts of copying one task's outputs, and the first delay between them (doubling). */
    STORAGE_ATTEMPTS: z.coerce.number().int().min(1).default(12),
    STORAGE_RETRY_MS: z.coerce.number().int().min(1).default(2_000),
    /** Lifetime of a signed result link; each read of a task signs fresh ones. */
    RESULT_LINK_TTL_S: z.coerce
      .number()
      .int()
      .min(60)
      .default(7 * 86_400),
    /** Days a new tenant's copies are kept (`keys create --retention-days` overrides); unset keeps them forever. */
    RESULT_RETENTION_DAYS: RetentionDays,
  })
  .superRefine((c, ctx) => {
    if (Boolean(c.KLING_ACCESS_KEY) !== Boolean(c.KLING_SECRET_KEY)) {
      ctx.addIssue({ code: 'custom', path: ['KLING_SECRET_KEY'], message: 'KLING_ACCESS_KEY and KLING_SECRET_KEY go together' });
    }
    const clusterSeedProblem = c.REDIS_CLUSTER ? clusterSeedUrlProblem(c.REDIS_URL) : undefined;
    if (clusterSeedProblem) ctx.addIssue({ code: 'custom', path: ['REDIS_URL'], message: clusterSeedProblem });
    checkRetention(c, ctx);
    if ((c.S3_ENDPOINT || c.S3_ACCESS_KEY_ID) && !c.S3_BUCKET) {
      ctx.addIssue({ code: 'custom', path: ['S3_BUCKET'], message: 'is required once any other S3_ variable is set' });
    }
    if (Boolean(c.S3_ACCESS_KEY_ID) !== Boolean(c.S3_SECRET_ACCESS_KEY)) {
      ctx.addIssue({ code: 'custom', path: ['S3_SECRET_ACCESS_KEY'], message: 'S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together' });
    }
  });

/**
 * A task's removal takes its events and deliveries with it, so a longer limit for them would never
 * apply: refused rather than silently ignored. A task must also outlive its Idempotency-Key, or a
 * replay within the key's TTL would make a second task.
 */
function checkRetention(
  c: { TASK_RETENTION_DAYS?: number; EVENT_RETENTION_DAYS?: number; DELIVERY_RETENTION_DAYS?: number; IDEMPOTENCY_TTL_HOURS: number },
  ctx: z.RefinementCtx,
): void {
  const task = c.TASK_RETENTION_DAYS;
  if (task === undefined) return;
  for (const [name, days] of [
    ['EVENT_RETENTION_DAYS', c.EVENT_RETENTION_DAYS],
    ['DELIVERY_RETENTION_DAYS', c.DELIVERY_RETENTION_DAYS],
  ] as const) {
    if (days !== undefined && days > task)
      ctx.addIssue({
        code: 'custom',
        path: [name],
        message: `must not exceed TASK_RETENTION_DAYS (${task}): a task's removal takes these rows with it; lower it or leave it unset`,
      });
  }
  if (task * 24 < c.IDEMPOTENCY_TTL_HOURS)
    ctx.addIssue({
      code: 'custom',
      path: ['TASK_RETENTION_DAYS'],
      message: `must cover IDEMPOTENCY_TTL_HOURS (${c.IDEMPOTENCY_TTL_HOURS} h): a task removed before its key expires would let a replay create a second task`,
    });
}

/** Why REDIS_URL cannot introduce a cluster, if it cannot: it names one node, and a cluster has only database 0. */
function clusterSeedUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'with REDIS_CLUSTER, must be a redis:// or rediss:// URL of a cluster node';
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')
    return 'with REDIS_CLUSTER, must be a redis:// or rediss:// URL of a cluster node';
  if (!/^\/?0?$/.test(parsed.pathname)) return 'with REDIS_CLUSTER, cannot name a database: a Redis Cluster has only database 0';
  return undefined;
}

/** On a cluster every key of a BullMQ queue must hash to one slot (its scripts touch several): the prefix gets a hash tag if it has none. */
const clusterPrefix = (prefix: string) => (prefix.includes('{') ? prefix : `{${prefix}}`);

export const KLING_GLOBAL_BASE_URL = 'https://api-singapore.klingai.com';

export type Config = z.infer<typeof ConfigSchema> & {
  PUBLIC_BASE_URL: string;
  /** True when no upstream is configured: the built-in simulator stands in for Kling. */
  useSimulator: boolean;
  /** Per-kind stage limits (`QUEUE_TIMEOUT_MS_TEXT_TO_VIDEO` ...), by the kind's name as written there. */
  stageLimitOverrides: Record<string, { queueMs?: number; startMs?: number; totalMs?: number }>;
};

const STAGE_OVERRIDE = /^(QUEUE|START|TOTAL)_TIMEOUT_MS_([A-Z0-9_]+)$/;
const STAGE_KEY = { QUEUE: 'queueMs', START: 'startMs', TOTAL: 'totalMs' } as const;

/** The `<STAGE>_TIMEOUT_MS_<KIND>` variables, by kind; the kind names are checked against the registry at start. */
function stageLimitOverrides(env: Record<string, string>): { overrides: Config['stageLimitOverrides']; problems: string[] } {
  const overrides: Config['stageLimitOverrides'] = {};
  const problems: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    const m = STAGE_OVERRIDE.exec(name);
    if (!m) continue;
    const ms = StageMs.safeParse(value);
    if (!ms.success) problems.push(`  ${name}: must be a whole number of milliseconds, at least 1`);
    else (overrides[m[2]] ??= {})[STAGE_KEY[m[1] as keyof typeof STAGE_KEY]] = ms.data;
  }
  return { overrides, problems };
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const set = stripEmpty(env);
  const parsed = ConfigSchema.safeParse(set);
  const stages = stageLimitOverrides(set);
  if (!parsed.success || stages.problems.length) {
    const lines = (parsed.error?.issues ?? []).map((i) => `  ${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new Error(`Invalid configuration:\n${[...lines, ...stages.problems].join('\n')}`);
  }
  const c = parsed.data;
  const useSimulator = !c.KLING_BASE_URL && !c.KLING_API_KEY && !c.KLING_ACCESS_KEY;
  return {
    ...c,
    // A credential without a base URL means Kling itself (the global endpoint).
    KLING_BASE_URL: c.KLING_BASE_URL ?? (useSimulator ? undefined : KLING_GLOBAL_BASE_URL),
    PUBLIC_BASE_URL: c.PUBLIC_BASE_URL ?? `http://127.0.0.1:${c.PORT}`,
    QUEUE_PREFIX: c.REDIS_CLUSTER ? clusterPrefix(c.QUEUE_PREFIX) : c.QUEUE_PREFIX,
    useSimulator,
    stageLimitOverrides: stages.overrides,
  };
}

/** Reads ./.env into process.env when it exists (variables already set win), as Node's --env-file does. */
export function loadDotEnv(file = '.env'): void {
  if (fs.existsSync(file)) process.loadEnvFile(file);
}

/** `FOO=` in a .env file means "not set", not "set to the empty string". */
function stripEmpty(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''));
}
