/**
 * `npm run bench`: the service against a bare pipeline doing the same I/O, in one run, on this
 * machine (the method and how to read the report: docs/benchmarks.md). Progress goes to stderr,
 * the report to stdout, the raw results to a JSON file in the temp directory.
 *
 * Phases, for the bare pipeline and then for the service (1 API + 1 worker process each):
 *   create      autocannon, 50 connections, against the API alone (BENCH_CREATE_ROUNDS windows per
 *               pipeline, the later ones alternating bare and service)
 *   end to end  a steady backlog through submission, both upstream callbacks and client webhooks
 *               (BENCH_E2E_ROUNDS windows per pipeline, the later ones alternating bare and service)
 *   latency     upstream callback -> client webhook at a moderate fixed rate
 * then the service alone with 2 API + 2 worker processes (scale-out, no double processing).
 *
 * `npm run bench -- --profile` instead profiles both pipelines (scripts/bench/profile.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bench } from './config';
import { cleanPrefix, clearServiceDb, prepareBareDb, prepareServiceDb, redisClient, slowlog, truncateBare } from './infra';
import { measureCreateRound, measureE2eRound, measurePipeline, measureScale } from './measure';
import { barePipeline, servicePipeline, type Pipeline } from './pipelines';
import { installCleanup, killAll } from './procs';
import { startReceiver } from './receiver';
import { runProfile } from './profile';
import { describeMachine, printReport, type RunResults } from './report';
import { startSimulator } from './sim-protocol';
import { progress } from './stats';

async function main(): Promise<void> {
  installCleanup();
  const startedSec = Math.floor(Date.now() / 1000);
  const redis = redisClient();
  progress('preparing databases kling_tracker_bench and kling_tracker_bench_bare, cleaning Redis prefixes');
  await Promise.all([cleanPrefix(redis, bench.servicePrefix), cleanPrefix(redis, bench.barePrefix)]);
  const apiKey = await prepareServiceDb();
  await prepareBareDb();
  const machine = await describeMachine(redis);

  const sim = await startSimulator();
  const receiver = await startReceiver();
  const shared = { sim, receiver, redis };
  const options = { simUrl: sim.url, redis };
  progress(`simulator (zero latency) at ${sim.url}, webhook receiver at ${receiver.url}`);

  try {
    const bare = await measurePipeline(barePipeline(options), shared);
    const service = await measurePipeline(servicePipeline(apiKey, options), shared);
    const createRounds = { service: [service.create], bare: [bare.create] };
    const e2eRounds = { service: [service.e2e.perSecond], bare: [bare.e2e.perSecond] };
    // Later rounds alternate which pipeline goes first (bare first in odd rounds, the service in
    // even ones), so that a drift of the shared machine within a round favours neither.
    const bothInOrder = async <T>(round: number, measure: (p: Pipeline) => Promise<T>, into: { bare: T[]; service: T[] }) => {
      const runBare = async () => into.bare.push(await measure(barePipeline(options)));
      const runService = async () => into.service.push(await measure(servicePipeline(apiKey, options)));
      if (round % 2 === 1) await runBare().then(runService);
      else await runService().then(runBare);
    };
    for (let round = 2; round <= Math.max(bench.createRounds, bench.e2eRounds); round++) {
      if (round <= bench.createRounds) await bothInOrder(round, (p) => measureCreateRound(p, shared), createRounds);
      if (round <= bench.e2eRounds) await bothInOrder(round, (p) => measureE2eRound(p, shared), e2eRounds);
    }
    const scale = await measureScale(servicePipeline(apiKey, options), shared);
    const slow = [...(await slowlog(redis, bench.servicePrefix, startedSec)), ...(await slowlog(redis, bench.barePrefix, startedSec))];
    const results: RunResults = { machine, service, bare, createRounds, e2eRounds, scale, slowlog: slow };

    const file = path.join(os.tmpdir(), `kling-tracker-bench-${machine.date.replace(/[:.]/g, '-')}.json`);
    fs.writeFileSync(file, JSON.stringify(results, null, 2));
    console.log(printReport(results));
    console.log(`\nRaw results: ${file}`);
    if (!scale.ok) process.exitCode = 1;
  } finally {
    progress('cleaning up: child processes, Redis prefixes, tables');
    await sim.child.stop();
    await receiver.close();
    killAll();
    await Promise.all([cleanPrefix(redis, bench.servicePrefix), cleanPrefix(redis, bench.barePrefix)]);
    await truncateBare();
    await clearServiceDb();
    redis.disconnect();
  }
}

const entry = process.argv.includes('--profile') ? () => (installCleanup(), runProfile()) : main;
entry().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  killAll();
  process.exit(1);
});
