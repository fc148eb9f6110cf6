// `npm run simulator`: the built-in Kling simulator as a process of its own (docker-compose uses
// it as the stand-in upstream). Clients authenticate with KLING_API_KEY, like the service does.
// With SIMULATOR_ACCOUNTS it serves several independent accounts on one port, each under /NAME.
import { loadConfig, loadDotEnv, type Config } from '../src/config';
import { createKlingSimulator, type SimulatorOptions } from '../src/simulator/kling-simulator';
import { createSimulatedAccounts } from '../src/simulator/simulated-accounts';

function simulatorOptions(config: Config): SimulatorOptions {
  return {
    models: config.KLING_MODELS,
    videoModels: config.KLING_VIDEO_MODELS,
    callbackSecret: config.KLING_WEBHOOK_SECRET,
    processingAfterMs: config.SIMULATOR_PROCESSING_MS,
    finishAfterMs: config.SIMULATOR_FINISH_MS,
  };
}

async function startOne(config: Config): Promise<() => Promise<void>> {
  const sim = createKlingSimulator({
    ...simulatorOptions(config),
    apiKey: config.KLING_API_KEY,
    accessKey: config.KLING_ACCESS_KEY,
    secretKey: config.KLING_SECRET_KEY,
  });
  sim.faults.failRate = config.SIMULATOR_FAIL_RATE;
  const url = await sim.listen(config.SIMULATOR_PORT, config.HOST);
  // Result file URLs must name an address the clients can reach, not the bind address.
  if (config.SIMULATOR_PUBLIC_URL) sim.fileBaseUrl = config.SIMULATOR_PUBLIC_URL;
  console.error(`KLING SIMULATOR (fake upstream, fake images and videos) listening on ${url}`);
  return () => sim.close();
}

async function startAccounts(config: Config, specs: NonNullable<Config['SIMULATOR_ACCOUNTS']>): Promise<() => Promise<void>> {
  const host = createSimulatedAccounts(specs, simulatorOptions(config));
  const url = await host.listen(config.SIMULATOR_PORT, config.HOST);
  for (const { name, sim } of host.accounts) {
    sim.faults.failRate = config.SIMULATOR_FAIL_RATE;
    if (config.SIMULATOR_PUBLIC_URL) sim.fileBaseUrl = `${config.SIMULATOR_PUBLIC_URL}/${name}`;
  }
  console.error(`KLING SIMULATOR (fake upstream, fake images and videos) listening on ${url}`);
  for (const spec of specs) {
    const limit = (n: number | undefined) => n ?? 'unlimited';
    console.error(
      `  account ${spec.name}: base URL ${url}/${spec.name}, image slots ${limit(spec.imageSlots)}, video slots ${limit(spec.videoSlots)}`,
    );
  }
  return () => host.close();
}

async function main() {
  loadDotEnv();
  const config = loadConfig();
  const close = config.SIMULATOR_ACCOUNTS ? await startAccounts(config, config.SIMULATOR_ACCOUNTS) : await startOne(config);
  const stop = () => void close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
