import { randomBytes } from 'node:crypto';
import { loadConfig, loadDotEnv } from './config';
import { prepareDatabase } from './db/migrate';
import { createLogger } from './logger';
import { createDb } from './db/client';
import { startService } from './service';
import { secretsKeyFor } from './tenants/secret-box';
import { resealLegacySecrets } from './tenants/tenants.service';
import { createKlingSimulator } from './simulator/kling-simulator';
import { hasAddedAccounts } from './accounts/account-repository';

/** `npm start`: migrate, then run the API and/or workers (ROLE), with the simulator if no upstream is set. */
async function main(): Promise<void> {
  loadDotEnv();
  const config = loadConfig();
  const log = createLogger(config.LOG_LEVEL, { role: config.ROLE }, Boolean(process.stdout.isTTY) && config.NODE_ENV !== 'production');
  await prepareDatabase(config.DATABASE_URL);
  await resealSecrets(config, log);
  log.info('database ready (migrations applied)');

  let klingBaseUrl = config.KLING_BASE_URL ?? '';
  let simulator: ReturnType<typeof createKlingSimulator> | undefined;
  if (config.useSimulator && config.ROLE !== 'api' && (await poolHasAccounts(config))) {
    log.info('no KLING_* upstream: the accounts added with `npm run cli -- accounts add` take the work (no built-in simulator)');
  } else if (config.useSimulator && config.ROLE !== 'api') {
    // The simulator checks auth like Kling does; this process is its only client.
    config.KLING_API_KEY = `sim_${randomBytes(16).toString('hex')}`;
    simulator = createKlingSimulator({
      apiKey: config.KLING_API_KEY,
      models: config.KLING_MODELS,
      videoModels: config.KLING_VIDEO_MODELS,
      callbackSecret: config.KLING_WEBHOOK_SECRET,
      processingAfterMs: config.SIMULATOR_PROCESSING_MS,
      finishAfterMs: config.SIMULATOR_FINISH_MS,
    });
    simulator.faults.failRate = config.SIMULATOR_FAIL_RATE;
    klingBaseUrl = await simulator.listen(config.SIMULATOR_PORT, '127.0.0.1');
    log.warn(
      { simulator: klingBaseUrl },
      '*** NO UPSTREAM CONFIGURED: using the BUILT-IN KLING SIMULATOR. Images are fake. Set KLING_BASE_URL and KLING_API_KEY (or KLING_ACCESS_KEY/KLING_SECRET_KEY) to use Kling. ***',
    );
  }
  const service = await startService(config, log, klingBaseUrl);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    // Workers wait for their running jobs; a job stuck past the bound is left to BullMQ's stalled
    // recovery (another worker runs it again), so exiting is safe.
    const force = setTimeout(() => {
      log.error({ after_ms: config.SHUTDOWN_TIMEOUT_MS }, 'in-flight work did not finish in time; exiting anyway');
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_MS);
    force.unref();
    await service.close();
    await simulator?.close();
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** Whether an operator added upstream accounts; then the built-in simulator does not stand in for a missing environment credential. */
async function poolHasAccounts(config: ReturnType<typeof loadConfig>): Promise<boolean> {
  const db = createDb(config.DATABASE_URL, 1);
  try {
    return await hasAddedAccounts(db);
  } finally {
    await db.$disconnect();
  }
}

/** Secrets sealed before they were bound to their tenant and column are sealed again, before anything opens them. */
async function resealSecrets(config: ReturnType<typeof loadConfig>, log: ReturnType<typeof createLogger>): Promise<void> {
  const db = createDb(config.DATABASE_URL, 1);
  try {
    const resealed = await resealLegacySecrets(db, secretsKeyFor(config, log));
    if (resealed) log.info({ tenants: resealed }, 'sealed tenant secrets again, bound to their tenant and column');
  } finally {
    await db.$disconnect();
  }
}

main().catch((err: unknown) => {
  // Configuration errors are meant for a person: print them plainly.
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
