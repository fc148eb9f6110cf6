import { Client } from 'pg';
import { bench, type BenchKind } from './config';
import { startPhase, type CreateClient, type Shared } from './feeder';
import { inFreshProcesses } from './measure';
import type { Pipeline } from './pipelines';
import { sleep, type Child } from './procs';
import type { CallbackStats } from './sim-protocol';
import { progress } from './stats';

export interface OverloadWindow {
  /** Tasks accepted into the backlog, and creates refused or failed while building it. */
  tasks: number;
  createErrors: number;
  /** Seconds the API alone took to accept the backlog. */
  createS: number;
  /** From the worker being ready until every task ended, or until nothing ended for BENCH_OVERLOAD_STALL_S, or BENCH_OVERLOAD_TIMEOUT_S. */
  drainS: number;
  drained: boolean;
  /**
   * Tasks at `succeed` in the pipeline's own database per second, from the worker being ready until
   * the last of them succeeded: tasks a pipeline lost (the bare pipeline has no polling to find a
   * callback that never came) are its `unfinished`, not a tail of waiting that divides its goodput.
   */
  goodput: number;
  /** The same over the steady window (seconds from the worker being ready); NaN if the drain was too short for one. */
  steadyGoodput: number;
  steadyWindowS: [number, number];
  /** Tasks reaching `succeed` in each whole second of the drain. */
  seconds: number[];
  succeeded: number;
  failed: number;
  /** Tasks neither succeeded nor failed when the drain ended (the target is zero). */
  unfinished: number;
  /** Upstream tasks of this kind (one per task is the target). */
  upstreamCreated: number;
  /** The upstream's callbacks, counted at the simulator as an outside checker would. */
  callbacks: CallbackStats;
  /** Peak resident set (VmHWM) of the processes, kB. */
  peakRssKb: { api: number; worker: number };
}

/** The steady window ends when this share of the backlog has succeeded: after it the queue runs dry. */
const STEADY_UNTIL_SHARE = 0.9;
const TICK_MS = 250;
/** Longest wait for callbacks still in flight after the drain: the simulator's own deadline is 5 s. */
const SETTLE_MS = 10_000;

interface Counts {
  succeeded: number;
  failed: number;
}
interface Sample extends Counts {
  /** Seconds since the worker was ready. */
  t: number;
}

/** Both pipelines keep Kling's status values in a `state` column; each has its own table. */
const TABLE: Record<Pipeline['name'], string> = { service: 'tasks', bare: 'bare_tasks' };

async function stateCounter(p: Pipeline): Promise<{ read(): Promise<Counts>; close(): Promise<void> }> {
  const client = new Client({ connectionString: p.dbUrl });
  await client.connect();
  const sql = `SELECT count(*) FILTER (WHERE state = 'succeed') AS s, count(*) FILTER (WHERE state = 'failed') AS f FROM ${TABLE[p.name]}`;
  return {
    async read() {
      const row = (await client.query<{ s: string; f: string }>(sql)).rows[0];
      return { succeeded: Number(row.s), failed: Number(row.f) };
    },
    close: () => client.end(),
  };
}

/** Exactly `n` creates, `BENCH_CREATE_CONNECTIONS` at a time; returns how many were accepted. */
async function createBacklog(client: CreateClient, n: number): Promise<number> {
  let started = 0;
  let accepted = 0;
  const loop = async () => {
    while (started < n) {
      started++;
      if (await client.create()) accepted++;
    }
  };
  await Promise.all(Array.from({ length: bench.createConnections }, loop));
  return accepted;
}

/** Samples the database until every task has ended or the limit is reached (never hangs). */
async function watchDrain(read: () => Promise<Counts>, tasks: number, label: string): Promise<{ samples: Sample[]; drained: boolean }> {
  const start = Date.now();
  const samples: Sample[] = [{ t: 0, ...(await read()) }];
  for (let tick = 1; ; tick++) {
    await sleep(start + tick * TICK_MS - Date.now());
    const sample = { t: (Date.now() - start) / 1000, ...(await read()) };
    samples.push(sample);
    if (sample.succeeded + sample.failed >= tasks) return { samples, drained: true };
    if (sample.t >= bench.overloadTimeoutS) return { samples, drained: false };
    // Nothing ended for a long while: what is left is lost (the service's polls come well within it).
    const moved = samples.find((s) => s.succeeded + s.failed === sample.succeeded + sample.failed)!;
    if (sample.t - moved.t >= bench.overloadStallS) return { samples, drained: false };
    if (tick % (10_000 / TICK_MS) === 0) progress(`${label}: ${sample.t.toFixed(0)}s, ${sample.succeeded} of ${tasks} succeeded`);
  }
}

/** Goodput until the last success, over the steady window, and per whole second of the drain. */
export function drainFigures(samples: Sample[], tasks: number, skipS: number) {
  const last = samples[samples.length - 1];
  const lastSuccess = samples.find((s) => s.succeeded >= last.succeeded)!;
  const from = samples.find((s) => s.t >= skipS);
  const to = samples.find((s) => s.succeeded >= STEADY_UNTIL_SHARE * tasks) ?? last;
  const steady = from && to.t > from.t ? { goodput: (to.succeeded - from.succeeded) / (to.t - from.t), window: [from.t, to.t] } : undefined;
  const seconds: number[] = [];
  for (let second = 1, before = samples[0].succeeded; second <= last.t; second++) {
    const at = samples.find((s) => s.t >= second)!.succeeded;
    seconds.push(at - before);
    before = at;
  }
  return {
    goodput: lastSuccess.t > 0 ? last.succeeded / lastSuccess.t : NaN,
    steadyGoodput: steady?.goodput ?? NaN,
    steadyWindowS: (steady?.window ?? [NaN, NaN]) as [number, number],
    seconds,
  };
}

/**
 * Open loop: the backlog is all there before any worker runs (the API alone accepts it, tasks
 * without callback_url), then one worker drains it against an upstream that answers and calls back
 * at once, without limit. Goodput is read in the pipeline's own database; callbacks are judged
 * where they are sent.
 */
export function measureOverload(p: Pipeline, kind: BenchKind, s: Shared): Promise<OverloadWindow> {
  return inFreshProcesses(p, false, async (api) => {
    const label = `${p.name} ${kind.name}: overload`;
    const client = await startPhase(p, kind, api, s, false);
    progress(`${label}, creating a backlog of ${bench.overloadBacklog} tasks (API alone)`);
    const createStart = Date.now();
    const tasks = await createBacklog(client, bench.overloadBacklog);
    const createS = (Date.now() - createStart) / 1000;
    client.close();
    progress(`${label}: ${tasks} tasks accepted in ${createS.toFixed(1)}s; starting the worker`);
    const counter = await stateCounter(p);
    let worker: Child | undefined;
    try {
      worker = await p.startWorker(api);
      const { samples, drained } = await watchDrain(counter.read, tasks, label);
      await Promise.race([s.sim.settle(), sleep(SETTLE_MS)]);
      const last = samples[samples.length - 1];
      const window: OverloadWindow = {
        tasks,
        createErrors: client.errors(),
        createS,
        drainS: last.t,
        drained,
        ...drainFigures(samples, tasks, bench.overloadSkipS),
        succeeded: last.succeeded,
        failed: last.failed,
        unfinished: tasks - last.succeeded - last.failed,
        upstreamCreated: (await s.sim.created())[kind.id] ?? 0,
        callbacks: await s.sim.callbackStats(),
        peakRssKb: { api: api.child.memoryKb('VmHWM'), worker: worker.memoryKb('VmHWM') },
      };
      const c = window.callbacks;
      progress(
        `${label}: goodput ${window.goodput.toFixed(0)}/s (steady ${window.steadyGoodput.toFixed(0)}/s), ` +
          `${drained ? 'drained' : 'NOT drained'} in ${window.drainS.toFixed(1)}s; callbacks ${c.sent}, p50 ${c.p50Ms} ms, p99 ${c.p99Ms} ms, ` +
          `timeouts ${c.timeouts}, connection errors ${c.connectionErrors}, non-2xx ${c.non2xx}`,
      );
      return window;
    } finally {
      await counter.close();
      if (worker) await p.stop([worker]);
    }
  });
}
