/**
 * `npm run bench -- --profile`: where the time goes. Runs the create and end-to-end phases of both
 * pipelines with `node --cpu-prof` on every process under test, against a private Postgres with
 * pg_stat_statements and a private Redis (clean INFO commandstats, SLOWLOG over 1 ms, MONITOR),
 * then prints per-task statement and command counts and a summary of each CPU profile.
 * The figures of this mode carry the profilers' overhead: the benchmark numbers come from `npm run bench`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { bench, taskBody } from './config';
import { ownCpuMs, processCpuMs } from './cpu';
import { formatSummary, summarise } from './cpu-summary';
import { commandStats, monitorSample, namedSlowlog, resetStatements, topStatements } from './db-stats';
import { prepareBareDb, prepareServiceDb, waitIdle } from './infra';
import { cannon } from './phase-create';
import { runE2e } from './phase-e2e';
import { barePipeline, servicePipeline, type Pipeline, type PipelineOptions } from './pipelines';
import { startPrivatePostgres, startPrivateRedis, type PrivateServer } from './private-servers';
import { sleep, type Child } from './procs';
import { startReceiver, type Receiver } from './receiver';
import { startSimulator, type SimHandle } from './sim-protocol';
import { progress } from './stats';

const CREATE_S = 10;
const MONITOR_MS = 5000;

interface Env {
  sim: SimHandle;
  receiver: Receiver;
  redis: Redis;
  redisUrl: string;
  outDir: string;
}

const perTask = (n: number, tasks: number) => (n / Math.max(tasks, 1)).toFixed(2);

async function dbSnapshot(p: Pipeline, env: Env, tasks: number, what: string): Promise<string[]> {
  const lines = [`  ${what}: Postgres statements and Redis commands per task (${tasks} tasks)`];
  const st = await topStatements(p.dbUrl).catch(() => undefined);
  if (st) {
    lines.push(
      `    Postgres: ${perTask(st.calls, tasks)} statements/task, ${perTask(st.totalMs, tasks)} ms execution/task, ` +
        `${perTask(st.plans, tasks)} plans/task, ${perTask(st.planMs, tasks)} ms planning/task; by total execution time (plans per call):`,
    );
    for (const s of st.top)
      lines.push(
        `      ${perTask(s.calls, tasks).padStart(6)}/task  ${s.meanMs.toFixed(3).padStart(7)} ms  ` +
          `(${(s.plans / Math.max(s.calls, 1)).toFixed(2)})  ${s.query}`,
      );
  } else lines.push('    Postgres: pg_stat_statements unavailable');
  const cmds = await commandStats(env.redis);
  const calls = cmds.reduce((a, c) => a + c.calls, 0);
  lines.push(
    `    Redis: ${perTask(calls, tasks)} commands/task; by time: ${cmds
      .slice(0, 8)
      .map((c) => `${c.command} ${perTask(c.calls, tasks)}/task`)
      .join(', ')}`,
  );
  return lines;
}

async function resetStats(p: Pipeline, env: Env): Promise<void> {
  await resetStatements(p.dbUrl).catch(() => undefined);
  await env.redis.config('RESETSTAT');
  await env.redis.call('SLOWLOG', 'RESET');
}

function profileOf(env: Env, child: Child): string {
  // Node names profiles CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; thread 0 is the main one.
  const file = fs.readdirSync(env.outDir).find((f) => f.includes(`.${child.pid}.0.`) && f.endsWith('.cpuprofile'));
  return file ? formatSummary(summarise(path.join(env.outDir, file), 12)) : `${child.name}: no profile written`;
}

async function profilePipeline(p: Pipeline, env: Env): Promise<string[]> {
  const out = [`== ${p.kind} ==`];
  const api = await p.startApi(`${p.kind}-api`);
  let worker: Child | undefined;
  try {
    const body = JSON.stringify(taskBody(env.receiver.url));
    progress(`${p.kind}: create under the profilers`);
    await cannon(api, p, body, 2);
    await waitIdle(p.dbUrl);
    await resetStats(p, env);
    const r = await cannon(api, p, body, CREATE_S);
    await waitIdle(p.dbUrl);
    out.push(`  create: ${(r['2xx'] / CREATE_S).toFixed(0)}/s accepted, p50 ${r.latency.p50} ms (under --cpu-prof)`);
    out.push(...(await dbSnapshot(p, env, r['2xx'], 'create')));
    await p.reset();

    worker = await p.startWorker(`${p.kind}-worker`, api);
    await resetStats(p, env);
    progress(`${p.kind}: end to end under the profilers`);
    const w = worker;
    const readCpu = async () => ({
      api: processCpuMs(api.child.pid),
      worker: processCpuMs(w.pid),
      simulator: processCpuMs(env.sim.child.pid),
      driver: ownCpuMs(),
    });
    // A MONITOR sample in the middle of the window: which commands (and BullMQ scripts) a task costs.
    const monitored = sleep((bench.e2eWarmupS + 2) * 1000).then(async () => {
      const before = env.receiver.succeeded();
      const counts = await monitorSample(env.redisUrl, MONITOR_MS);
      return { counts, tasks: env.receiver.succeeded() - before };
    });
    const e2e = await runE2e(p, [api], env.sim, env.receiver, env.redis, readCpu);
    out.push(
      `  end to end: ${e2e.perSecond.toFixed(1)} tasks/s (under --cpu-prof), submit jobs ${JSON.stringify(e2e.submitOutcomes ?? {})}`,
    );
    out.push(
      `    CPU ms per task in the window: ${Object.entries(e2e.cpu)
        .map(([k, c]) => `${k} ${c.msPerTask.toFixed(2)}`)
        .join(', ')}`,
    );
    out.push(...(await dbSnapshot(p, env, e2e.created, 'end to end')));
    const mon = await monitored;
    out.push(`    Redis MONITOR sample (${mon.tasks} tasks finished in ${MONITOR_MS / 1000} s), commands per task:`);
    for (const [k, n] of [...mon.counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 20))
      out.push(`      ${perTask(n, mon.tasks).padStart(7)}  ${k}`);
    out.push(
      `    Redis SLOWLOG (> 1 ms): ${(await namedSlowlog(env.redis)).map((e) => `${e.command} ${e.micros} us`).join('; ') || 'none'}`,
    );
  } finally {
    // SIGTERM: the service exits within SHUTDOWN_TIMEOUT_MS and Node writes the profile on exit.
    await Promise.all([api.child.stop(15_000), worker?.stop(15_000)]);
  }
  out.push('', profileOf(env, api.child));
  if (worker) out.push('', profileOf(env, worker));
  await p.reset();
  return out;
}

export async function runProfile(): Promise<void> {
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktbench-profile-'));
  // Inherited by the service processes: after SIGTERM they exit (writing their profile) within 3 s.
  process.env.SHUTDOWN_TIMEOUT_MS = '3000';
  const servers: PrivateServer[] = [];
  let pgUrl: string | undefined;
  try {
    const pg = await startPrivatePostgres();
    servers.push(pg);
    pgUrl = pg.url;
  } catch (err) {
    progress(`no private Postgres (${(err as Error).message.split('\n')[0]}); using the shared one without pg_stat_statements`);
  }
  const privateRedis = await startPrivateRedis();
  servers.push(privateRedis);
  const redis = new Redis(privateRedis.url, { maxRetriesPerRequest: 3 });
  const dbs = pgUrl ? { serviceDbUrl: `${pgUrl}/kling_tracker_bench`, bareDbUrl: `${pgUrl}/kling_tracker_bench_bare` } : {};
  progress(`private Redis ${privateRedis.url}${pgUrl ? `, private Postgres ${pgUrl} (pg_stat_statements)` : ''}; profiles in ${outDir}`);
  const apiKey = await prepareServiceDb(dbs.serviceDbUrl);
  await prepareBareDb(dbs.bareDbUrl);
  const sim = await startSimulator();
  const receiver = await startReceiver();
  const env: Env = { sim, receiver, redis, redisUrl: privateRedis.url, outDir };
  const options: PipelineOptions = {
    simUrl: sim.url,
    redis,
    redisUrl: privateRedis.url,
    nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${outDir}`],
    ...dbs,
  };
  try {
    const report = [
      ...(await profilePipeline(servicePipeline(apiKey, options), env)),
      '',
      ...(await profilePipeline(barePipeline(options), env)),
    ];
    console.log(`\n${report.join('\n')}\n\nCPU profiles (open in Chrome DevTools or speedscope): ${outDir}`);
  } finally {
    await sim.child.stop();
    await receiver.close();
    redis.disconnect();
    for (const s of servers.reverse()) await s.stop();
  }
}
