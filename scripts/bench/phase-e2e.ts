import { bench } from './config';
import { closedLoopFeeder, drain } from './feeder';
import { startPhase } from './phase-common';
import { cpuPerTask, type CpuReader, type CpuShare } from './cpu';
import { countKeys, diffCounters, pgCounters, submitOutcomes, type PgCounters } from './infra';
import { startPgSampler, type PgSample } from './pg-sampler';
import type { Redis } from 'ioredis';
import type { Api, Pipeline } from './pipelines';
import { sleep } from './procs';
import type { Receiver } from './receiver';
import type { SimHandle, SimStats } from './sim-protocol';
import { progress } from './stats';

export interface E2eResult {
  /** Tasks per second reaching the client's `succeed` webhook, over the measured window. */
  perSecond: number;
  /** Slowest and fastest single second of the window (is the rate steady?). */
  slowestSecond: number;
  fastestSecond: number;
  /** Tasks completed in each second of the window, in order. */
  seconds: number[];
  /** Fewest tasks outstanding during the window: above zero means the backlog never ran dry. */
  minOutstanding: number;
  created: number;
  createErrors: number;
  /** Tasks still not finished when the drain timed out (the target is zero). */
  unfinished: number;
  /** Postgres work per task finished in the window (pg_stat_database deltas). */
  pgPerTask: PgCounters;
  pgTop: PgSample[];
  pgActiveAvg: number;
  /** Keys under the pipeline's Redis prefix once drained (bounded if finished jobs are trimmed). */
  redisKeys: number;
  sim: SimStats;
  repeats: { sameStatus: number; sameWebhookId: number };
  /** CPU per finished task, by process, over the window. */
  cpu: Record<string, CpuShare>;
  /** Service only: how the recent submit jobs ended (see infra.submitOutcomes). */
  submitOutcomes?: Record<string, number>;
}

/**
 * A steady backlog: the feeder keeps `BENCH_BACKLOG` tasks outstanding, so the workers always have
 * work and the arrival rate settles at the completion rate. Completions are counted where the
 * client sees them (its `succeed` webhook) over a window that starts after a warm-up.
 */
export async function runE2e(
  pipeline: Pipeline,
  apis: Api[],
  sim: SimHandle,
  receiver: Receiver,
  redis: Redis,
  readCpu: CpuReader,
): Promise<E2eResult> {
  const client = await startPhase(pipeline, apis, sim, receiver);
  const feeder = closedLoopFeeder(client, bench.feederConcurrency, bench.e2eBacklog, () => receiver.succeeded());
  progress(`${pipeline.kind}: end-to-end, backlog ${bench.e2eBacklog}, warm-up ${bench.e2eWarmupS}s, window ${bench.e2eWindowS}s`);
  await sleep(bench.e2eWarmupS * 1000);

  const pgBefore = await pgCounters(pipeline.dbUrl);
  const sampler = await startPgSampler(pipeline.dbUrl);
  const cpuBefore = await readCpu();
  const start = Date.now();
  const doneAtStart = receiver.succeeded();
  const perSecond: number[] = [];
  let last = doneAtStart;
  let minOutstanding = Infinity;
  for (let tick = 1; tick <= bench.e2eWindowS * 10; tick++) {
    await sleep(start + tick * 100 - Date.now());
    minOutstanding = Math.min(minOutstanding, feeder.ids.length - receiver.succeeded());
    if (tick % 10 === 0) {
      const now = receiver.succeeded();
      perSecond.push(now - last);
      last = now;
    }
  }
  const completed = receiver.succeeded() - doneAtStart;
  const elapsedS = (Date.now() - start) / 1000;
  const cpu = cpuPerTask(cpuBefore, await readCpu(), completed, elapsedS * 1000);
  const outcomes = pipeline.kind === 'service' ? await submitOutcomes(redis, pipeline.prefix) : undefined;
  const pgAfter = await pgCounters(pipeline.dbUrl);
  const pg = await sampler.stop();
  const result = {
    perSecond: completed / elapsedS,
    slowestSecond: Math.min(...perSecond),
    fastestSecond: Math.max(...perSecond),
    seconds: perSecond,
  };
  progress(
    `${pipeline.kind}: end-to-end ${result.perSecond.toFixed(0)} tasks/s (seconds ${result.slowestSecond}..${result.fastestSecond}), ` +
      `min outstanding ${minOutstanding}; per second ${perSecond.join(' ')}; draining`,
  );

  await feeder.stop();
  client.close();
  const unfinished = await drain(feeder.ids, (id) => receiver.hasSucceeded(id), bench.drainTimeoutMs);
  // Let the last completed jobs be trimmed and the last webhook land before counting what is left.
  await sleep(1000);
  return {
    ...result,
    minOutstanding,
    created: feeder.ids.length,
    createErrors: client.errors(),
    unfinished,
    pgPerTask: diffCounters(pgBefore, pgAfter, completed),
    pgTop: pg.top,
    pgActiveAvg: pg.activeAvg,
    redisKeys: await countKeys(redis, pipeline.prefix),
    sim: await sim.stats(),
    repeats: receiver.repeats(),
    cpu,
    submitOutcomes: outcomes,
  };
}
