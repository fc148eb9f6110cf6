/**
 * `npm run bench`: the service against a bare pipeline doing the same I/O, in one run, on this
 * machine (the method and how to read the report: docs/benchmarks.md). Progress goes to stderr,
 * the report to stdout, the raw results to a JSON file in the temp directory.
 *
 * For every kind (BENCH_KINDS), in rounds, each window in fresh processes of its pipeline:
 *   create      autocannon, 50 connections, against the API alone (BENCH_CREATE_ROUNDS windows)
 *   end to end  a steady backlog through submission, both upstream callbacks and client webhooks,
 *               with one API and one worker process (BENCH_E2E_ROUNDS windows); the first window of
 *               the first kind continues with the latency phase (upstream callback -> client webhook
 *               at a moderate fixed rate)
 *   overload    first kind only: a large backlog created before the worker starts, then drained
 *               (BENCH_OVERLOAD_ROUNDS windows; phase-overload.ts)
 * BENCH_PHASES picks the phases (create, e2e, overload; all by default).
 *
 * `npm run bench -- --profile` instead profiles one end-to-end window per kind and pipeline (profile.ts);
 * `--history [N]` measures the service with N finished tasks of history beside an empty database
 * (history-run.ts); `--memory` watches the processes' memory under a long steady load (memory-run.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { databaseName } from '../../src/db/migrate';
import { bench, describeOutputs } from './config';
import { cleanPrefix, clearServiceDb, prepareBareDb, prepareServiceDb, redisClient, truncateBare } from './infra';
import type { Shared } from './feeder';
import { measureCreate, measureE2e } from './measure';
import { measureOverload } from './phase-overload';
import { barePipeline, servicePipeline, type Pipeline } from './pipelines';
import { historyTasks, runHistory } from './history-run';
import { runMemory } from './memory-run';
import { installCleanup, killAll } from './procs';
import { runProfile } from './profile';
import { startReceiver } from './receiver';
import { describeMachine, printReport, type RunResults, type Windows } from './report';
import type { OverloadResults } from './report-overload';
import { startSimulator } from './sim-protocol';
import { progress } from './stats';

async function runBench(service: Pipeline, bare: Pipeline, s: Shared): Promise<Omit<RunResults, 'machine'>> {
  const perKind = <T>() => Object.fromEntries(bench.kinds.map((k): [string, Windows<T>] => [k.name, { service: [], bare: [] }]));
  const create = perKind<Awaited<ReturnType<typeof measureCreate>>>();
  const e2e = perKind<Awaited<ReturnType<typeof measureE2e>>>();
  const overload: OverloadResults = { kind: bench.kinds[0].name, backlog: bench.overloadBacklog, service: [], bare: [] };
  const rounds = { create: bench.createRounds, e2e: bench.e2eRounds, overload: bench.overloadRounds };
  const runs = (phase: keyof typeof rounds, round: number) => bench.phases.has(phase) && round <= rounds[phase];
  // Each round measures both pipelines, bare first in odd rounds and the service first in even
  // ones, so that a drift of the shared machine within a round favours neither.
  const inTurn = async <T>(round: number, measure: (p: Pipeline) => Promise<T>, into: Windows<T>) => {
    for (const p of round % 2 === 1 ? [bare, service] : [service, bare]) into[p === bare ? 'bare' : 'service'].push(await measure(p));
  };
  for (let round = 1; round <= Math.max(...[...bench.phases].map((phase) => rounds[phase])); round++) {
    for (const kind of runs('create', round) || runs('e2e', round) ? bench.kinds : []) {
      progress(`round ${round}, ${kind.name}`);
      if (runs('create', round)) await inTurn(round, (p) => measureCreate(p, kind, s), create[kind.name]);
      const latency = round === 1 && kind === bench.kinds[0];
      if (runs('e2e', round)) await inTurn(round, (p) => measureE2e(p, kind, s, { latency }), e2e[kind.name]);
    }
    if (runs('overload', round)) {
      progress(`round ${round}, ${bench.kinds[0].name} overload`);
      await inTurn(round, (p) => measureOverload(p, bench.kinds[0], s), overload);
    }
  }
  return { kinds: bench.kinds.map((k) => k.name), create, e2e, overload: bench.phases.has('overload') ? overload : undefined };
}

async function main(): Promise<void> {
  installCleanup();
  const profileDir = process.argv.includes('--profile') ? fs.mkdtempSync(path.join(os.tmpdir(), 'ktbench-profile-')) : undefined;
  const redis = redisClient();
  progress(`preparing databases ${databaseName(bench.serviceDbUrl)} and ${databaseName(bench.bareDbUrl)}, cleaning Redis prefixes`);
  await Promise.all([cleanPrefix(redis, bench.servicePrefix), cleanPrefix(redis, bench.barePrefix)]);
  const apiKey = await prepareServiceDb();
  await prepareBareDb();
  const machine = await describeMachine(redis);

  const sim = await startSimulator();
  const receiver = await startReceiver();
  const s: Shared = { sim, receiver, redis };
  const options = { simUrl: sim.url, redis, profileDir };
  const [service, bare] = [servicePipeline(apiKey, options), barePipeline(options)];
  progress(
    `simulator (zero latency) at ${sim.url}, webhook receiver at ${receiver.url}; kinds ${bench.kinds.map((k) => k.name).join(', ')}`,
  );

  try {
    if (profileDir) {
      console.log(await runProfile([service, bare], s, profileDir));
      return;
    }
    const withHistory = historyTasks(process.argv);
    if (withHistory) return console.log(await runHistory(withHistory, apiKey, s, options, machine));
    if (process.argv.includes('--memory')) return console.log(await runMemory(service, s, machine));
    const results: RunResults = { machine, outputs: describeOutputs(), logLevel: bench.logLevel, ...(await runBench(service, bare, s)) };
    const file = path.join(os.tmpdir(), `kling-tracker-bench-${machine.date.replace(/[:.]/g, '-')}.json`);
    fs.writeFileSync(file, JSON.stringify(results, null, 2));
    console.log(printReport(results));
    console.log(`\nRaw results: ${file}`);
  } finally {
    progress('cleaning up: child processes, Redis prefixes, tables');
    await sim.child.stop();
    await receiver.close();
    killAll();
    await Promise.all([cleanPrefix(redis, bench.servicePrefix), cleanPrefix(redis, bench.barePrefix)]);
    await truncateBare();
    await clearServiceDb();
    fs.rmSync(bench.filesDir, { recursive: true, force: true });
    redis.disconnect();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  killAll();
  process.exit(1);
});
