import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { loadConfig, type Config } from '../../src/config';
import type { Task } from '../../src/db/client';
import { createLogger, type Logger } from '../../src/logger';
import { startService, type Service, type ServiceOptions } from '../../src/service';
import { createKlingSimulator, type KlingSimulator, type SimulatorOptions } from '../../src/simulator/kling-simulator';
import { createTenant, type NewTenantCredentials } from '../../src/tenants/tenants.service';
import { eventually } from './invariants';

export const UPSTREAM_KEY = 'sim-upstream-key';
/** One key for every process a test starts (they must all open the same sealed secrets). */
const TEST_SECRETS_KEY = randomBytes(32).toString('base64');

export interface HarnessOptions {
  env?: Record<string, string>;
  simulator?: SimulatorOptions;
  /** Overrides for the API process only (e.g. a Redis it cannot reach). */
  apiEnv?: Record<string, string>;
  /** Options of the API process only (e.g. a Postgres re-check of waited tasks that never comes). */
  apiOptions?: ServiceOptions;
  /** Where the service logs go (default: silent, or TEST_LOG_LEVEL). */
  logger?: Logger;
  /** Start queue workers (default true). Without them, tasks stay queued: handy for API-only tests. */
  workers?: boolean;
}

export interface Harness {
  sim: KlingSimulator;
  api: Service;
  worker?: Service;
  /** Base URL of the API under test. */
  url: string;
  config: Config;
  /** The environment the service was configured from, for starting more processes like it. */
  env: Record<string, string>;
  newTenant(name?: string): Promise<NewTenantCredentials>;
  /**
   * A connection of the test's own to the service's database: a session apart from the service's
   * pool (its own locks, settings and transactions). Closed with the harness.
   */
  pgClient(): Promise<Client>;
  /** Polls Postgres until the task satisfies `done` (bounded; throws with the last state seen). */
  waitForTask(taskId: string, done: (t: Task) => boolean, timeoutMs?: number): Promise<Task>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Runs `body` with the simulator's outputs on `files`' host, then puts the simulator's own host back
 * and closes `files` (when it has something to close).
 */
export async function servingFrom(
  h: Harness,
  files: { url: string; close?: () => Promise<void> },
  body: () => Promise<void>,
): Promise<void> {
  const ownHost = h.sim.fileBaseUrl;
  h.sim.fileBaseUrl = files.url;
  try {
    await body();
  } finally {
    h.sim.fileBaseUrl = ownHost;
    await files.close?.();
  }
}

/**
 * The real service (API and workers as in production, against the real Postgres and Redis) in
 * front of the real simulator on port 0. Each harness has its own BullMQ prefix; each jest worker
 * its own database (test/setup-env.ts).
 */
export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const sim = createKlingSimulator({ apiKey: UPSTREAM_KEY, processingAfterMs: 20, finishAfterMs: 30, ...opts.simulator });
  const simUrl = await sim.listen();
  // Durable copies go to a directory of this harness's own (removed on close) unless the test names one.
  const storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kt-results-'));
  const env = {
    DATABASE_URL: process.env.DATABASE_URL,
    QUEUE_PREFIX: `kt-test-${randomUUID().slice(0, 8)}`,
    PORT: '0',
    KLING_BASE_URL: simUrl,
    KLING_API_KEY: UPSTREAM_KEY,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    SUBMIT_BACKOFF_MS: '20',
    SWEEP_INTERVAL_MS: '200',
    SWEEP_MIN_AGE_MS: '100',
    UPSTREAM_THROTTLE_PAUSE_MS: '50',
    // Receivers in tests listen on 127.0.0.1; the SSRF tests turn this off.
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    WEBHOOK_RETRY_SCHEDULE_MS: '0,50,100,150',
    // Every test request comes from 127.0.0.1, many with bad credentials on purpose; the tests of
    // the limit itself set it low.
    AUTH_FAILURES_PER_MINUTE: '1000000',
    SECRETS_KEY: TEST_SECRETS_KEY,
    // Most tests assert the upstream's result URLs (and their exact extension): the durable copies'
    // tests set RESULT_URLS=mirror, the product's default, themselves.
    RESULT_URLS: 'upstream',
    STORAGE_DIR: storageDir,
    STORAGE_RETRY_MS: '50',
    ...opts.env,
  };
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    await sim.close();
    throw err;
  }
  const log = opts.logger ?? createLogger(config.LOG_LEVEL);
  // The callback URL needs the API's address, known only once it listens: API first, then workers.
  // Test files that ran earlier in this jest worker used the same database: start from empty.
  await truncateAll(config.DATABASE_URL);
  const api = await startService({ ...loadConfig({ ...env, ...opts.apiEnv }), ROLE: 'api' }, log, simUrl, opts.apiOptions);
  // The API answers before its Redis connection is up (it runs without Redis), counting in memory
  // meanwhile what it counts in Redis once connected (failed authentications, rate limits): tests
  // start once it is connected, unless they gave it a Redis it cannot reach.
  await eventually('the API connected to Redis', async () => api.redis.status === 'ready', 5000).catch(() => undefined);
  const url = api.server!.url;
  const fullConfig = { ...config, PUBLIC_BASE_URL: url };
  const worker = opts.workers === false ? undefined : await startService({ ...fullConfig, ROLE: 'worker' }, log, simUrl);
  const clients: Client[] = [];

  return {
    sim,
    api,
    worker,
    url,
    config: fullConfig,
    env: { ...env, PUBLIC_BASE_URL: url } as Record<string, string>,
    newTenant: (name = 'test') => createTenant(api.db, api.secrets, name),
    async pgClient() {
      const c = new Client({ connectionString: config.DATABASE_URL });
      await c.connect();
      clients.push(c);
      return c;
    },
    async waitForTask(taskId, done, timeoutMs = 15_000) {
      const until = Date.now() + timeoutMs;
      let last: Task | null = null;
      while (Date.now() < until) {
        last = await api.db.task.findUnique({ where: { id: taskId } });
        if (last && done(last)) return last;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`task ${taskId} did not reach the expected state; last seen: ${last?.state ?? 'missing'}`);
    },
    async reset() {
      await sim.settle();
      await truncateAll(config.DATABASE_URL);
      sim.reset();
    },
    async close() {
      await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
      await worker?.workers?.close();
      // The prefix is this harness's own: leave nothing of it behind in Redis (through whichever
      // process can reach it; a test may give the API a dead Redis).
      const live = [worker, api].find((s) => s?.redis.status === 'ready');
      for (const q of live ? live.queues.all : []) await q.obliterate({ force: true }).catch(() => undefined);
      await worker?.close();
      await api.close();
      await sim.close();
      fs.rmSync(storageDir, { recursive: true, force: true });
    },
  };
}

/** Empties every application table (all of `public` but Prisma's migration record). */
async function truncateAll(databaseUrl: string): Promise<void> {
  const c = new Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const { rows } = await c.query<{ t: string }>(
      `SELECT quote_ident(tablename) AS t FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_prisma_migrations'`,
    );
    if (!rows.length) return;
    // The harness's own workers keep running (sweeps, polls, deliveries): TRUNCATE can deadlock
    // with one of their transactions, and Postgres then cancels it. Trying again is safe.
    for (let attempt = 1; ; attempt++) {
      try {
        await c.query(`TRUNCATE ${rows.map((r) => r.t).join(', ')} RESTART IDENTITY CASCADE`);
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== '40P01' || attempt >= 5) throw err;
      }
    }
  } finally {
    await c.end();
  }
}
