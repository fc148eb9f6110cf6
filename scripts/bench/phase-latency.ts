import { bench, type BenchKind } from './config';
import { drain, fixedRateFeeder, startPhase, type Shared } from './feeder';
import type { Api, Pipeline } from './pipelines';
import { percentile, progress } from './stats';

export interface LatencyResult {
  /** Upstream callback sent -> client webhook received, over every (task, status) pair, in ms. */
  p50Ms: number;
  p99Ms: number;
  pairs: number;
  /** Callbacks whose webhook never came (the target is zero). */
  missing: number;
  tasks: number;
  unfinished: number;
}

/**
 * Callback-to-webhook latency at a steady, moderate rate (well under capacity, so queueing behind
 * a backlog is not what is measured). For each upstream callback the simulator records when it
 * started sending it; the receiver records when the webhook of the same task and status arrived.
 * Both clocks are this machine's, so the difference is the pipeline's reaction time.
 */
export async function runLatency(p: Pipeline, kind: BenchKind, api: Api, s: Shared): Promise<LatencyResult> {
  const client = await startPhase(p, kind, api, s);
  progress(`${p.name} ${kind.name}: latency at ${bench.latencyRate} tasks/s for ${bench.latencyDurationS}s`);
  const ids = await fixedRateFeeder(client, bench.latencyRate, bench.latencyDurationS * 1000);
  client.close();
  const unfinished = await drain(ids, s.receiver);
  const latencies: number[] = [];
  let missing = 0;
  for (const c of await s.sim.callbacks()) {
    const arrived = s.receiver.arrivals.get(`${c.taskId}|${c.status}`);
    if (arrived === undefined) missing++;
    else latencies.push(arrived - c.at);
  }
  const result = {
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    pairs: latencies.length,
    missing,
    tasks: ids.length,
    unfinished,
  };
  progress(`${p.name} ${kind.name}: callback -> webhook p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms over ${result.pairs} callbacks`);
  return result;
}
