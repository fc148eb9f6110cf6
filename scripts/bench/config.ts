import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';

/** Every knob of the benchmark in one place; each can be overridden from the environment. */
const num = (name: string, fallback: number): number => {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
};

export const ROOT = path.resolve(__dirname, '..', '..');

/** A task kind the benchmark drives: its Kling path (the same on both pipelines and upstream) and a valid body. */
export interface BenchKind {
  name: string;
  /** The kind's id in src/kinds/registry.ts, which the simulator counts its tasks by. */
  id: string;
  path: string;
  /** The create body; the driver adds its receiver as callback_url. */
  body: Record<string, unknown>;
}

const prompt = 'a lighthouse at dawn, benchmark';
const ALL_KINDS: BenchKind[] = [
  {
    name: 'image',
    id: 'image-generation',
    path: '/v1/images/generations',
    body: { model_name: 'kling-v3', prompt, n: 1, aspect_ratio: '16:9' },
  },
  { name: 'text2video', id: 'text-to-video', path: '/v1/videos/text2video', body: { model_name: 'kling-v3', prompt, duration: '5' } },
];

function kindsFromEnv(): BenchKind[] {
  const names = (process.env.BENCH_KINDS || ALL_KINDS.map((k) => k.name).join(',')).split(',').map((s) => s.trim());
  return names.map((name) => {
    const kind = ALL_KINDS.find((k) => k.name === name);
    if (!kind) throw new Error(`BENCH_KINDS: unknown kind ${JSON.stringify(name)} (known: ${ALL_KINDS.map((k) => k.name).join(', ')})`);
    return kind;
  });
}

/** The phases of a run; the latency phase belongs to `e2e` (it follows its first window). */
const PHASES = ['create', 'e2e', 'overload'] as const;
export type Phase = (typeof PHASES)[number];

function phasesFromEnv(): Set<Phase> {
  const names = (process.env.BENCH_PHASES || PHASES.join(',')).split(',').map((s) => s.trim());
  for (const name of names) {
    if (!PHASES.includes(name as Phase))
      throw new Error(`BENCH_PHASES: unknown phase ${JSON.stringify(name)} (known: ${PHASES.join(', ')})`);
  }
  return new Set(names as Phase[]);
}

const PG = process.env.BENCH_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432';

/** BENCH_INSTANCE: a suffix for the databases and Redis prefixes, so that two runs on one server do not empty each other's. */
const INSTANCE = process.env.BENCH_INSTANCE ?? '';
if (!/^[a-z0-9_]*$/.test(INSTANCE)) throw new Error('BENCH_INSTANCE must be lowercase letters, digits and underscores');
const own = (name: string) => (INSTANCE ? `${name}_${INSTANCE}` : name);

export const bench = {
  /** Our own databases and BullMQ prefixes: the machine's Postgres and Redis are shared with the test suite. */
  serviceDbUrl: `${PG}/${own('kling_tracker_bench')}`,
  bareDbUrl: `${PG}/${own('kling_tracker_bench_bare')}`,
  redisUrl: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
  servicePrefix: own('ktbench'),
  barePrefix: own('ktbare'),
  upstreamKey: `bench_${randomBytes(12).toString('hex')}`,
  /**
   * BENCH_FILE_BASE_URL: where the simulator's result URLs point instead of itself, e.g. a host that
   * does not resolve (https://cdn.klingai.com on a machine without outside DNS), to measure a
   * deployment whose copies cannot be made.
   */
  fileBaseUrl: process.env.BENCH_FILE_BASE_URL || undefined,
  /**
   * RESULT_URLS of the service (mirror, its default, unless set): with mirror the service copies
   * every output, and the bare pipeline downloads each one to a file too, so both do the same I/O.
   */
  resultUrls: process.env.RESULT_URLS === 'upstream' ? 'upstream' : 'mirror',
  /**
   * BENCH_BARE_COPIES=0: the bare pipeline downloads nothing even when the service copies every
   * output, as a bare pipeline that knows nothing of copies does: the cost of the copies then falls
   * in the ratios. `durable`: it writes each download as durably as the service's directory store
   * (the file synced, renamed, the directory synced), so only the copy's checks and records fall in them.
   */
  bareCopies: process.env.BENCH_BARE_COPIES !== '0',
  bareCopiesSynced: process.env.BENCH_BARE_COPIES === 'durable',
  /** LOG_LEVEL of the service's processes: `warn` unless BENCH_LOG_LEVEL says (`info`, a deployment's default, logs every request). */
  logLevel: process.env.BENCH_LOG_LEVEL || 'warn',
  /** The service's STORAGE_DIR and the bare pipeline's downloads, under one directory removed at the end of the run. */
  filesDir: path.join(os.tmpdir(), own('ktbench-files')),
  /** One key for every service process of the run: they all open the same sealed tenant secrets. */
  secretsKey: randomBytes(32).toString('base64'),

  /** Kinds measured, in this order in every round; the first one also runs the latency phase. */
  kinds: kindsFromEnv(),

  /** Create phase: autocannon connections, warm-up and measured seconds, windows per pipeline and kind. */
  createConnections: num('BENCH_CREATE_CONNECTIONS', 50),
  createWarmupS: num('BENCH_CREATE_WARMUP_S', 3),
  createDurationS: num('BENCH_CREATE_S', 15),
  createRounds: Math.max(1, num('BENCH_CREATE_ROUNDS', 2)),

  /**
   * End-to-end phase: tasks kept outstanding by the feeder, warm-up, measured window, windows per
   * pipeline and kind. The warm-up lets V8 optimize the hot code first, as a running deployment has
   * (the service has more to compile).
   */
  e2eBacklog: num('BENCH_BACKLOG', 300),
  e2eWarmupS: num('BENCH_E2E_WARMUP_S', 15),
  e2eWindowS: num('BENCH_E2E_WINDOW_S', 20),
  e2eRounds: Math.max(1, num('BENCH_E2E_ROUNDS', 2)),
  feederConcurrency: num('BENCH_FEEDER_CONCURRENCY', 8),

  /** Latency phase: a steady, moderate arrival rate (tasks per second) for this long. */
  latencyRate: num('BENCH_LATENCY_RATE', 10),
  latencyDurationS: num('BENCH_LATENCY_S', 15),

  /** Phases run (BENCH_PHASES), each in its place in every round. */
  phases: phasesFromEnv(),

  /**
   * Overload phase (first kind only): a backlog of tasks without callback_url created before any
   * worker runs, then drained by one worker; windows per pipeline; seconds after the worker is
   * ready before the steady window starts; longest drain before the window reports it unfinished.
   */
  overloadBacklog: num('BENCH_OVERLOAD_BACKLOG', 20_000),
  overloadRounds: num('BENCH_OVERLOAD_ROUNDS', 1),
  overloadSkipS: num('BENCH_OVERLOAD_SKIP_S', 10),
  overloadTimeoutS: num('BENCH_OVERLOAD_TIMEOUT_S', 600),
  /** A drain in which no task ended for this long is over: the rest are reported unfinished. */
  overloadStallS: num('BENCH_OVERLOAD_STALL_S', 120),

  /** Bounds on waiting for a pipeline to drain, so a stuck run fails instead of hanging. */
  drainTimeoutMs: num('BENCH_DRAIN_TIMEOUT_MS', 120_000),
};

/** `--history [N]`: the seeded database, and the measurements on it beside the empty one (docs/benchmarks.md). */
export const history = {
  dbUrl: `${PG}/${own('kling_tracker_bench_history')}`,
  /** Finished tasks seeded when `--history` gives no number. */
  defaultTasks: 2_000_000,
  tenants: num('BENCH_HISTORY_TENANTS', 100),
  /** The seeded tasks' created_at spans this many days. */
  days: num('BENCH_HISTORY_DAYS', 180),
  /** Write the seed again even when the database holds one of the same shape. */
  reseed: process.env.BENCH_HISTORY_RESEED === '1',
  /**
   * The benchmark tenant's finished tasks on the empty database (what its reads find): enough that
   * list page 1000 (29 970 skipped) is there as well, for the first kind (60% of them).
   */
  baselineTasks: num('BENCH_HISTORY_BASELINE', 60_000),
  /** Windows per database and phase (the order alternates from round to round). */
  rounds: num('BENCH_HISTORY_ROUNDS', 2),
  /** Each read: warm-up and measured seconds. */
  readWarmupS: num('BENCH_HISTORY_READ_WARMUP_S', 2),
  readS: num('BENCH_HISTORY_READ_S', 10),
  /** Tasks the GETs by id take in turn, drawn from the tenant's whole history. */
  readSample: num('BENCH_HISTORY_READ_SAMPLE', 20_000),
  /** Kling's default page size: page 1000 skips 29 970 tasks. */
  pageSize: 30,
};

/** `--memory`: a steady end-to-end load for this long, the processes' resident sets sampled this often. */
export const memory = {
  durationS: num('BENCH_MEMORY_S', 600),
  sampleS: num('BENCH_MEMORY_SAMPLE_S', 30),
};

/**
 * Environment of a service process (`src/main.ts`). Limits are lifted so that only the machine
 * limits throughput; everything else keeps its production default (sweep, lock, retries).
 */
export function serviceEnv(o: { role: 'api' | 'worker'; port: number; publicBaseUrl: string; simUrl: string }): Record<string, string> {
  return {
    ROLE: o.role,
    NODE_ENV: 'production',
    DATABASE_URL: bench.serviceDbUrl,
    REDIS_URL: bench.redisUrl,
    QUEUE_PREFIX: bench.servicePrefix,
    PORT: String(o.port),
    HOST: '127.0.0.1',
    PUBLIC_BASE_URL: o.publicBaseUrl,
    KLING_BASE_URL: o.simUrl,
    KLING_API_KEY: bench.upstreamKey,
    RESULT_URLS: bench.resultUrls,
    STORAGE_DIR: path.join(bench.filesDir, 'service'),
    LOG_LEVEL: bench.logLevel,
    RATE_LIMIT_PER_MINUTE: '100000000',
    MAX_UNFINISHED_TASKS: '100000000',
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    SECRETS_KEY: bench.secretsKey,
    UPSTREAM_CONCURRENCY: '100000',
    UPSTREAM_CONCURRENCY_VIDEO: '100000',
  };
}

/** Whether the bare pipeline downloads every output, as the service copies it (not when the copies cannot be made, or with BENCH_BARE_COPIES=0). */
export const bareCopies = () => bench.resultUrls === 'mirror' && !bench.fileBaseUrl && bench.bareCopies;

/** What each pipeline does with the outputs, for the report. */
export function describeOutputs(): string {
  if (bench.resultUrls === 'upstream') return 'outputs: RESULT_URLS=upstream, no copies (the bare pipeline downloads nothing either)';
  if (bench.fileBaseUrl)
    return `outputs: RESULT_URLS=mirror, result URLs on ${bench.fileBaseUrl}: the service's copies fail there, the bare pipeline downloads nothing`;
  if (!bareCopies())
    return 'outputs: RESULT_URLS=mirror, the service copies every output and the bare pipeline downloads nothing (BENCH_BARE_COPIES=0)';
  return bench.bareCopiesSynced
    ? 'outputs: RESULT_URLS=mirror, the service copies every output and the bare pipeline downloads each to a file, synced as the service syncs its copies (BENCH_BARE_COPIES=durable)'
    : 'outputs: RESULT_URLS=mirror, the service copies every output and the bare pipeline downloads each to a file';
}

/** Environment of a bare-pipeline process (scripts/bench/bare.ts). */
export function bareEnv(o: { port: number; publicBaseUrl: string; simUrl: string }): Record<string, string> {
  return {
    BARE_DATABASE_URL: bench.bareDbUrl,
    REDIS_URL: bench.redisUrl,
    BARE_PREFIX: bench.barePrefix,
    PORT: String(o.port),
    PUBLIC_BASE_URL: o.publicBaseUrl,
    KLING_BASE_URL: o.simUrl,
    KLING_API_KEY: bench.upstreamKey,
    BARE_PATHS: bench.kinds.map((k) => k.path).join(','),
    // With BENCH_FILE_BASE_URL the service's copies cannot be made, so there is no copy to match.
    ...(bareCopies() ? { BARE_COPY_DIR: path.join(bench.filesDir, 'bare') } : {}),
    ...(bareCopies() && bench.bareCopiesSynced ? { BARE_COPY_SYNC: '1' } : {}),
  };
}
