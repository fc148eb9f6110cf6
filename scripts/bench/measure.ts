import type { Redis } from 'ioredis';
import { bench } from './config';
import { commandCpuMs, ownCpuMs, processCpuMs, type CpuReader } from './cpu';
import { countKeys, serviceRowCounts, trackBackendsCpu } from './infra';
import { runCreate, type CreateResult } from './phase-create';
import { runE2e, type E2eResult } from './phase-e2e';
import { runLatency, type LatencyResult } from './phase-latency';
import { runScale, type ScaleResult } from './phase-scale';
import type { Api, Pipeline } from './pipelines';
import { connectionsTo, rssSampler, type Child } from './procs';
import type { Receiver } from './receiver';
import type { SimHandle } from './sim-protocol';
import { progress } from './stats';

export interface PipelineResult {
  create: CreateResult;
  e2e: E2eResult;
  latency: LatencyResult;
  /** Peak resident set (VmHWM) of the API and the worker process over all phases, kB. */
  peakRssKb: { api: number; worker: number };
  /** Resident set at the start and the end of the measured end-to-end window, and after the latency phase, kB. */
  rssKb: { api: number[]; worker: number[] };
  /** Rows kept per finished task, per table (service only). */
  rowsPerTask?: Record<string, number>;
  /** Redis keys of the prefix after the latency phase (compare with e2e.redisKeys: bounded?). */
  redisKeysLater: number;
}

export interface Shared {
  sim: SimHandle;
  receiver: Receiver;
  redis: Redis;
}

/** Every single-process measurement of one pipeline: create, end to end, latency, memory. */
export async function measurePipeline(p: Pipeline, s: Shared): Promise<PipelineResult> {
  progress(`${p.kind}: starting the API process`);
  await p.reset();
  const api = await p.startApi(`${p.kind}-api`);
  const backends = await trackBackendsCpu(p.dbUrl);
  let worker: Child | undefined;
  try {
    const create = await runCreate(p, api, s.receiver.url);
    await p.reset();
    progress(`${p.kind}: starting the worker process`);
    worker = await p.startWorker(`${p.kind}-worker`, api);
    const sampler = rssSampler([api.child, worker]);
    const w = worker;
    const readCpu: CpuReader = async () => ({
      api: processCpuMs(api.child.pid),
      worker: processCpuMs(w.pid),
      simulator: processCpuMs(s.sim.child.pid),
      'driver (feeder, receiver)': ownCpuMs(),
      'postgres backends (our db)': await backends.totalMs(),
      // The whole server: the test suite may use the same Redis at the same time.
      'redis-server (shared)': commandCpuMs('redis-server'),
    });
    const e2e = await runE2e(p, [api], s.sim, s.receiver, s.redis, readCpu);
    const e2eSeries = sampler.stop();
    const rowsPerTask = p.kind === 'service' ? perTask(await serviceRowCounts(p.dbUrl)) : undefined;
    const latency = await runLatency(p, [api], s.sim, s.receiver, readCpu);
    await new Promise((r) => setTimeout(r, 1000));
    const redisKeysLater = await countKeys(s.redis, p.prefix);
    const at = (series: number[], now: number) => [
      series[bench.e2eWarmupS] ?? NaN,
      series[bench.e2eWarmupS + bench.e2eWindowS - 1] ?? NaN,
      now,
    ];
    return {
      create,
      e2e,
      latency,
      peakRssKb: { api: api.child.peakRssKb(), worker: worker.peakRssKb() },
      rssKb: { api: at(e2eSeries[api.child.name], api.child.rssKb()), worker: at(e2eSeries[worker.name], worker.rssKb()) },
      rowsPerTask,
      redisKeysLater,
    };
  } finally {
    backends.stop();
    await Promise.all([api.child.stop(), worker?.stop()]);
    await p.reset();
  }
}

function perTask(counts: Record<string, number>): Record<string, number> {
  const tasks = Math.max(counts.tasks, 1);
  return Object.fromEntries(Object.entries(counts).map(([t, n]) => [t, n / tasks]));
}

/**
 * One more window of a pipeline, in fresh processes, for the rounds that alternate the two
 * pipelines (see run.ts): a create window against the API alone, or an end-to-end window (tasks
 * per second only).
 */
export async function measureCreateRound(p: Pipeline, s: Shared): Promise<CreateResult> {
  return inFreshProcesses(p, false, ([api]) => runCreate(p, api, s.receiver.url));
}

export async function measureE2eRound(p: Pipeline, s: Shared): Promise<number> {
  const noCpu: CpuReader = async () => ({});
  return inFreshProcesses(p, true, async (apis) => (await runE2e(p, apis, s.sim, s.receiver, s.redis, noCpu)).perSecond);
}

async function inFreshProcesses<T>(p: Pipeline, withWorker: boolean, work: (apis: Api[]) => Promise<T>): Promise<T> {
  progress(`${p.kind}: another round`);
  await p.reset();
  const api = await p.startApi(`${p.kind}-api`);
  let worker: Child | undefined;
  try {
    if (withWorker) worker = await p.startWorker(`${p.kind}-worker`, api);
    return await work([api]);
  } finally {
    await Promise.all([api.child.stop(), worker?.stop()]);
    await p.reset();
  }
}

export type ScaleRun = ScaleResult & {
  peakRssKb: Record<string, number>;
  /** Connections each process holds to Redis and to Postgres once the work is done. */
  connections: Record<string, { redis: number; postgres: number }>;
};

/** Two API and two worker processes of the service against the same Postgres and Redis. */
export async function measureScale(p: Pipeline, s: Shared): Promise<ScaleRun> {
  progress(`${p.kind}: starting 2 API and 2 worker processes`);
  await p.reset();
  const children: Child[] = [];
  try {
    const apis = await Promise.all([p.startApi(`${p.kind}-api-1`), p.startApi(`${p.kind}-api-2`)]);
    children.push(...apis.map((a) => a.child));
    children.push(...(await Promise.all(apis.map((api, i) => p.startWorker(`${p.kind}-worker-${i + 1}`, api)))));
    const result = await runScale(p, apis, s.sim, s.receiver);
    const pids = children.map((c) => c.pid);
    const redisConns = connectionsTo(Number(new URL(bench.redisUrl).port || 6379), pids);
    const pgConns = connectionsTo(Number(new URL(p.dbUrl).port || 5432), pids);
    return {
      ...result,
      peakRssKb: Object.fromEntries(children.map((c) => [c.name, c.peakRssKb()])),
      connections: Object.fromEntries(children.map((c) => [c.name, { redis: redisConns[c.pid] ?? 0, postgres: pgConns[c.pid] ?? 0 }])),
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await p.reset();
  }
}
