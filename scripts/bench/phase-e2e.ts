import { bench, type BenchKind } from './config';
import { closedLoopFeeder, drain, startPhase, type Shared } from './feeder';
import { countKeys, diffCounters, pgCounters, type PgCounters } from './infra';
import type { Api, Pipeline } from './pipelines';
import { sleep } from './procs';
import { progress } from './stats';

/** Figures read at the start and the end of the measured window (RSS by process; CPU in profile mode). */
export type Probe = () => Promise<Record<string, number>>;

export interface E2eResult {
  /** Tasks per second reaching the client's `succeed` webhook, over the measured window. */
  perSecond: number;
  /** Tasks completed in the window, and in each of its seconds, in order. */
  completed: number;
  seconds: number[];
  /** Fewest tasks outstanding during the window: above zero means the backlog never ran dry. */
  minOutstanding: number;
  created: number;
  createErrors: number;
  /** Tasks still not finished when the drain timed out (the target is zero). */
  unfinished: number;
  /** Upstream tasks of this kind created (one per task is the target; another kind's path would not count). */
  upstreamCreated: number;
  repeats: { sameStatus: number; sameWebhookId: number };
  /** Postgres work per task finished in the window (pg_stat_database deltas). */
  pgPerTask: PgCounters;
  /** Keys under the pipeline's Redis prefix once drained (bounded if finished jobs are trimmed). */
  redisKeys: number;
  /** The probe at the start and at the end of the window. */
  probe: { start: Record<string, number>; end: Record<string, number> };
}

/**
 * A steady backlog: the feeder keeps `BENCH_BACKLOG` tasks outstanding, so the workers always have
 * work and the arrival rate settles at the completion rate. Completions are counted where the
 * client sees them (its `succeed` webhook) over a window that starts after a warm-up.
 */
export async function runE2e(p: Pipeline, kind: BenchKind, api: Api, s: Shared, probe: Probe): Promise<E2eResult> {
  const { receiver } = s;
  const client = await startPhase(p, kind, api, s);
  const feeder = closedLoopFeeder(client, () => receiver.succeeded());
  progress(`${p.name} ${kind.name}: end to end, backlog ${bench.e2eBacklog}, warm-up ${bench.e2eWarmupS}s, window ${bench.e2eWindowS}s`);
  await sleep(bench.e2eWarmupS * 1000);

  const pgBefore = await pgCounters(p.dbUrl);
  const probeStart = await probe();
  const start = Date.now();
  const doneAtStart = receiver.succeeded();
  const seconds: number[] = [];
  let last = doneAtStart;
  let minOutstanding = Infinity;
  for (let tick = 1; tick <= bench.e2eWindowS * 10; tick++) {
    await sleep(start + tick * 100 - Date.now());
    minOutstanding = Math.min(minOutstanding, feeder.ids.length - receiver.succeeded());
    if (tick % 10 === 0) {
      seconds.push(receiver.succeeded() - last);
      last = receiver.succeeded();
    }
  }
  const completed = receiver.succeeded() - doneAtStart;
  const perSecond = completed / ((Date.now() - start) / 1000);
  const probeEnd = await probe();
  const pgAfter = await pgCounters(p.dbUrl);
  progress(
    `${p.name} ${kind.name}: end to end ${perSecond.toFixed(0)} tasks/s, min outstanding ${minOutstanding}; per second ${seconds.join(' ')}; draining`,
  );

  await feeder.stop();
  client.close();
  const unfinished = await drain(feeder.ids, receiver);
  // Let the last completed jobs be trimmed and the last webhook land before counting what is left.
  await sleep(1000);
  return {
    perSecond,
    completed,
    seconds,
    minOutstanding,
    created: feeder.ids.length,
    createErrors: client.errors(),
    unfinished,
    upstreamCreated: (await s.sim.created())[kind.id] ?? 0,
    repeats: receiver.repeats(),
    pgPerTask: diffCounters(pgBefore, pgAfter, completed),
    redisKeys: await countKeys(s.redis, p.prefix),
    probe: { start: probeStart, end: probeEnd },
  };
}
