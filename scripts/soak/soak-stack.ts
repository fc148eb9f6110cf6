import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDb } from '../../src/db/client';
import { prepareDatabase } from '../../src/db/migrate';
import { createKlingSimulator, type KlingSimulator } from '../../src/simulator/kling-simulator';
import { createSecretBox } from '../../src/tenants/secret-box';
import { createTenant } from '../../src/tenants/tenants.service';
import { startBalancer, type Balancer } from './balancer';
import { atCleanup } from './cleanup';
import { createPrivatePostgres, type PrivatePostgres } from './private-postgres';
import { privateRedis, type PrivateRedis } from './private-redis';
import type { Random } from './random';
import { ServiceProcess } from './service-process';
import { startWebhookReceiver, type WebhookReceiver } from './webhook-receiver';
import { freePort } from '../lib/local-services';

/** The upstream's slots per pool, the same for the service and the simulator (a full upstream answers 1303). */
const IMAGE_SLOTS = 24;
const VIDEO_SLOTS = 6;
export const QUEUE_PREFIX = 'kt-soak';

/** Everything the soak runs: private Postgres and Redis, the upstream, the receiver, the balancer and the service's processes. */
export interface SoakStack {
  postgres: PrivatePostgres;
  redis: PrivateRedis;
  databaseUrl: string;
  sim: KlingSimulator;
  receiver: WebhookReceiver;
  balancer: Balancer;
  apis: ServiceProcess[];
  workers: ServiceProcess[];
  apiKey: string;
  logDir: string;
  /** Stops it all; the logs stay unless `removeLogs`. */
  close(removeLogs: boolean): Promise<void>;
}

/**
 * Settings that let a drain finish within seconds: short sweeps, polls, locks and webhook retries;
 * enough submit attempts that no fault outlasts them (a task failed for an unavailable upstream
 * would have no upstream task).
 */
function serviceEnv(o: {
  databaseUrl: string;
  redisUrl: string;
  simUrl: string;
  upstreamKey: string;
  publicUrl: string;
  secretsKey: string;
}) {
  return {
    DATABASE_URL: o.databaseUrl,
    REDIS_URL: o.redisUrl,
    QUEUE_PREFIX,
    HOST: '127.0.0.1',
    PUBLIC_BASE_URL: o.publicUrl,
    KLING_BASE_URL: o.simUrl,
    KLING_API_KEY: o.upstreamKey,
    KLING_TIMEOUT_MS: '5000',
    SECRETS_KEY: o.secretsKey,
    LOG_LEVEL: 'info',
    UPSTREAM_CONCURRENCY_IMAGE: String(IMAGE_SLOTS),
    UPSTREAM_CONCURRENCY_VIDEO: String(VIDEO_SLOTS),
    UPSTREAM_POLL_AFTER_MS: '1500',
    UPSTREAM_THROTTLE_PAUSE_MS: '200',
    RECONCILE_INTERVAL_MS: '500',
    SWEEP_INTERVAL_MS: '1000',
    SWEEP_MIN_AGE_MS: '1000',
    SUBMIT_ATTEMPTS: '10',
    SUBMIT_BACKOFF_MS: '250',
    WORKER_LOCK_MS: '3000',
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    WEBHOOK_TIMEOUT_MS: '2000',
    WEBHOOK_RETRY_SCHEDULE_MS: '0,100,250,500,1000,2000,2000,2000,2000,2000,2000,2000',
    RATE_LIMIT_PER_MINUTE: '1000000',
    MAX_UNFINISHED_TASKS: '100000',
    SHUTDOWN_TIMEOUT_MS: '10000',
  };
}

export async function startStack(random: Random, log: (line: string) => void): Promise<SoakStack> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kt-soak-'));
  // The cluster's own directory inside belongs to the postgres user, which must be able to reach it.
  fs.chmodSync(dir, 0o711);
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kt-soak-logs-'));
  const undo: (() => Promise<void> | void)[] = [];
  const removeDir = () => fs.rmSync(dir, { recursive: true, force: true });
  const forget = atCleanup(removeDir);
  undo.push(() => (forget(), removeDir()));
  try {
    const [pgPort, redisPort, ...apiPorts] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const postgres = await createPrivatePostgres(path.join(dir, 'pg'), pgPort);
    const removePg = atCleanup(() => postgres.destroySync());
    // Its log joins the service's before the cluster goes.
    const pgLog = () => fs.existsSync(postgres.logFile) && fs.copyFileSync(postgres.logFile, path.join(logDir, 'postgres.log'));
    undo.push(() => (pgLog(), removePg(), postgres.destroySync()));
    await postgres.start();
    const databaseUrl = postgres.url('kling_tracker_soak');
    log(`private Postgres on port ${pgPort} (${dir}), migrating`);
    await prepareDatabase(databaseUrl);
    log('migrated; starting Redis, the simulator and the service');
    const redis = privateRedis(redisPort, dir);
    await redis.start();
    undo.push(() => redis.kill());

    const secretsKey = randomBytes(32).toString('base64');
    const db = createDb(databaseUrl, 1);
    const tenant = await createTenant(db, createSecretBox(Buffer.from(secretsKey, 'base64')), 'soak').finally(() => db.$disconnect());
    const upstreamKey = `soak-${randomBytes(8).toString('hex')}`;
    const sim = createKlingSimulator({ apiKey: upstreamKey, processingAfterMs: 300, finishAfterMs: 700 });
    Object.assign(sim.faults, { failRate: 0.1, concurrencyLimit: IMAGE_SLOTS, videoConcurrencyLimit: VIDEO_SLOTS });
    const simUrl = await sim.listen();
    undo.push(() => sim.close());
    const receiver = await startWebhookReceiver(tenant.webhook_secret, random, 0.03);
    undo.push(() => receiver.close());
    const balancer = await startBalancer(apiPorts);
    undo.push(() => balancer.close());

    const env = serviceEnv({ databaseUrl, redisUrl: redis.url, simUrl, upstreamKey, publicUrl: balancer.url, secretsKey });
    const apis = apiPorts.map((port, i) => new ServiceProcess(`api-${i + 1}`, 'api', { ...env, PORT: String(port) }, logDir));
    const workers = [1, 2].map((i) => new ServiceProcess(`worker-${i}`, 'worker', env, logDir));
    undo.push(() => Promise.all([...apis, ...workers].map((p) => p.stop())).then(() => undefined));
    await Promise.all([...apis, ...workers].map((p) => p.start()));
    log(`2 API processes behind ${balancer.url}, 2 workers, upstream simulator at ${simUrl}, logs in ${logDir}`);
    return {
      postgres,
      redis,
      databaseUrl,
      sim,
      receiver,
      balancer,
      apis,
      workers,
      apiKey: tenant.api_key,
      logDir,
      async close(removeLogs) {
        for (const step of undo.splice(0).reverse()) await step();
        if (removeLogs) fs.rmSync(logDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    for (const step of undo.splice(0).reverse()) await Promise.resolve(step()).catch(() => undefined);
    throw err;
  }
}
