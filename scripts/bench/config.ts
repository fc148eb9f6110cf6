import { randomBytes } from 'node:crypto';
import path from 'node:path';

/** Every knob of the benchmark in one place; each can be overridden from the environment. */
const num = (name: string, fallback: number): number => {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
};

export const ROOT = path.resolve(__dirname, '..', '..');

const PG = process.env.BENCH_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432';

export const bench = {
  /** Our own databases and BullMQ prefixes: the machine's Postgres and Redis are shared with the test suite. */
  serviceDbUrl: `${PG}/kling_tracker_bench`,
  bareDbUrl: `${PG}/kling_tracker_bench_bare`,
  redisUrl: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
  servicePrefix: 'ktbench',
  barePrefix: 'ktbare',
  upstreamKey: `bench_${randomBytes(12).toString('hex')}`,
  /** One key for every service process of the run: they all open the same sealed tenant secrets. */
  secretsKey: randomBytes(32).toString('base64'),

  /** Create phase: autocannon connections, warm-up and measured seconds. */
  createConnections: num('BENCH_CREATE_CONNECTIONS', 50),
  createWarmupS: num('BENCH_CREATE_WARMUP_S', 3),
  createDurationS: num('BENCH_CREATE_S', 15),
  /**
   * Create windows per pipeline, alternating like the end-to-end ones (the first of each runs with
   * its pipeline's other phases, about a minute apart); the mean rate is the figure.
   */
  createRounds: Math.max(1, num('BENCH_CREATE_ROUNDS', 2)),

  /**
   * End-to-end phase: tasks kept outstanding by the feeder, warm-up, and the measured window. The
   * warm-up lets V8 optimize the hot code first, as a running deployment has (the service has more to compile).
   */
  e2eBacklog: num('BENCH_BACKLOG', 300),
  e2eWarmupS: num('BENCH_E2E_WARMUP_S', 15),
  e2eWindowS: num('BENCH_E2E_WINDOW_S', 20),
  /**
   * End-to-end windows per pipeline, alternating bare and service (bare, service, service, bare,
   * ...), so that both are measured under the same drifts of a shared machine; the mean rate is the
   * figure.
   */
  e2eRounds: Math.max(1, num('BENCH_E2E_ROUNDS', 2)),
  feederConcurrency: num('BENCH_FEEDER_CONCURRENCY', 8),

  /** Latency phase: a steady, moderate arrival rate (tasks per second) for this long. */
  latencyRate: num('BENCH_LATENCY_RATE', 10),
  latencyDurationS: num('BENCH_LATENCY_S', 15),

  /** Scale-out phase: tasks pushed through two API and two worker processes. */
  scaleTasks: num('BENCH_SCALE_TASKS', 300),

  /** Bounds on waiting for a pipeline to drain, so a stuck run fails instead of hanging. */
  drainTimeoutMs: num('BENCH_DRAIN_TIMEOUT_MS', 120_000),
};

/** A valid Kling body for both pipelines; the callback_url is the driver's webhook receiver. */
export function taskBody(callbackUrl: string): Record<string, unknown> {
  return { model_name: 'kling-v3', prompt: 'a lighthouse at dawn, benchmark', n: 1, aspect_ratio: '16:9', callback_url: callbackUrl };
}

/**
 * Environment of a service process (`src/main.ts`). Limits are lifted so that only the machine
 * limits throughput; everything else keeps its production default (sweep, lock, retries).
 */
export function serviceEnv(o: {
  role: 'api' | 'worker';
  port: number;
  publicBaseUrl: string;
  simUrl: string;
  dbUrl?: string;
  redisUrl?: string;
}): Record<string, string> {
  return {
    ROLE: o.role,
    NODE_ENV: 'production',
    DATABASE_URL: o.dbUrl ?? bench.serviceDbUrl,
    REDIS_URL: o.redisUrl ?? bench.redisUrl,
    QUEUE_PREFIX: bench.servicePrefix,
    PORT: String(o.port),
    HOST: '127.0.0.1',
    PUBLIC_BASE_URL: o.publicBaseUrl,
    KLING_BASE_URL: o.simUrl,
    KLING_API_KEY: bench.upstreamKey,
    LOG_LEVEL: 'warn',
    RATE_LIMIT_PER_MINUTE: '100000000',
    MAX_UNFINISHED_TASKS: '100000000',
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    SECRETS_KEY: bench.secretsKey,
    UPSTREAM_CONCURRENCY: '100000',
  };
}

/** Environment of a bare-pipeline process (scripts/bench/bare.ts). */
export function bareEnv(o: {
  port: number;
  publicBaseUrl: string;
  simUrl: string;
  dbUrl?: string;
  redisUrl?: string;
}): Record<string, string> {
  return {
    BARE_DATABASE_URL: o.dbUrl ?? bench.bareDbUrl,
    REDIS_URL: o.redisUrl ?? bench.redisUrl,
    BARE_PREFIX: bench.barePrefix,
    PORT: String(o.port),
    PUBLIC_BASE_URL: o.publicBaseUrl,
    KLING_BASE_URL: o.simUrl,
    KLING_API_KEY: bench.upstreamKey,
  };
}
