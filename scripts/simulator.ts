// `npm run simulator`: the built-in Kling simulator as a process of its own (docker-compose uses
// it as the stand-in upstream). Clients authenticate with KLING_API_KEY, like the service does.
import { loadConfig, loadDotEnv } from '../src/config';
import { createKlingSimulator } from '../src/simulator/kling-simulator';

async function main() {
  loadDotEnv();
  const config = loadConfig();
  const sim = createKlingSimulator({
    apiKey: config.KLING_API_KEY,
    accessKey: config.KLING_ACCESS_KEY,
    secretKey: config.KLING_SECRET_KEY,
    models: config.KLING_MODELS,
    videoModels: config.KLING_VIDEO_MODELS,
    callbackSecret: config.KLING_WEBHOOK_SECRET,
    processingAfterMs: config.SIMULATOR_PROCESSING_MS,
    finishAfterMs: config.SIMULATOR_FINISH_MS,
  });
  sim.faults.failRate = config.SIMULATOR_FAIL_RATE;
  const url = await sim.listen(config.SIMULATOR_PORT, config.HOST);
  // Result file URLs must name an address the clients can reach, not the bind address.
  if (config.SIMULATOR_PUBLIC_URL) sim.fileBaseUrl = config.SIMULATOR_PUBLIC_URL;
  console.error(`KLING SIMULATOR (fake upstream, fake images and videos) listening on ${url}`);
  const stop = () => void sim.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
