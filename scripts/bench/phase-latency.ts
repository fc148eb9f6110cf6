import { bench } from './config';
import { cpuPerTask, type CpuReader, type CpuShare } from './cpu';
import { drain, fixedRateFeeder } from './feeder';
import { startPhase } from './phase-common';
import type { Api, Pipeline } from './pipelines';
import type { Receiver } from './receiver';
import type { SimHandle } from './sim-protocol';
import { percentile, progress } from './stats';

export interface LatencyResult {
  /** Upstream callback sent -> client webhook received, over every (task, status) pair, in ms. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  pairs: number;
  /** Callbacks whose webhook never came (the target is zero). */
  missing: number;
  tasks: number;
  unfinished: number;
  /** The same, per upstream status (processing, succeed). */
  byStatus: Record<string, { p50Ms: number; p99Ms: number }>;
  /** CPU per task by process over the phase: the cost of a task when nothing queues up. */
  cpu: Record<string, CpuShare>;
}

/**
 * Callback-to-webhook latency at a steady, moderate rate (well under capacity, so queueing behind
 * a backlog is not what is measured). For each upstream callback the simulator records when it
 * started sending it; the receiver records when the webhook of the same task and status arrived.
 * Both clocks are this machine's, so the difference is the pipeline's reaction time.
 */
export async function runLatency(
  pipeline: Pipeline,
  apis: Api[],
  sim: SimHandle,
  receiver: Receiver,
  readCpu: CpuReader,
): Promise<LatencyResult> {
  const client = await startPhase(pipeline, apis, sim, receiver);
  progress(`${pipeline.kind}: latency at ${bench.latencyRate} tasks/s for ${bench.latencyDurationS}s`);
  const cpuBefore = await readCpu();
  const started = Date.now();
  const ids = await fixedRateFeeder(client, bench.latencyRate, bench.latencyDurationS * 1000);
  client.close();
  const unfinished = await drain(ids, (id) => receiver.hasSucceeded(id), bench.drainTimeoutMs);
  const cpu = cpuPerTask(cpuBefore, await readCpu(), ids.length, Date.now() - started);
  const sent = await sim.callbacks();
  const latencies: number[] = [];
  const perStatus: Record<string, number[]> = {};
  let missing = 0;
  for (const c of sent) {
    const arrived = receiver.arrivals.get(`${c.taskId}|${c.status}`);
    if (arrived === undefined) {
      missing++;
      continue;
    }
    latencies.push(arrived - c.at);
    (perStatus[c.status] ??= []).push(arrived - c.at);
  }
  const byStatus = Object.fromEntries(
    Object.entries(perStatus).map(([k, xs]) => [k, { p50Ms: percentile(xs, 50), p99Ms: percentile(xs, 99) }]),
  );
  const result = {
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: Math.max(...latencies),
    pairs: latencies.length,
    missing,
    tasks: ids.length,
    unfinished,
    byStatus,
    cpu,
  };
  progress(`${pipeline.kind}: callback -> webhook p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms over ${result.pairs} callbacks`);
  return result;
}
