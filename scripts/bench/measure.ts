import type { BenchKind } from './config';
import type { Shared } from './feeder';
import { countKeys, serviceRowsPerTask } from './infra';
import { runCreate, type CreateResult } from './phase-create';
import { runE2e, type E2eResult, type Probe } from './phase-e2e';
import { runLatency, type LatencyResult } from './phase-latency';
import type { Api, Pipeline } from './pipelines';
import { sleep, type Child } from './procs';

/** Every window runs in fresh processes of its pipeline, on emptied tables and Redis keys. */

export type CreateWindow = CreateResult & { apiPeakRssKb: number };

export type E2eWindow = E2eResult & {
  /** Peak resident set (VmHWM) of the processes, over the window and the latency phase, kB. */
  peakRssKb: { api: number; worker: number };
  /** Rows kept per finished task, per table (service only). */
  rowsPerTask?: Record<string, number>;
  /** The latency phase, when it ran in the same processes, with RSS and Redis keys after it. */
  latency?: LatencyResult & { rssKb: { api: number; worker: number }; redisKeys: number };
};

export async function inFreshProcesses<T>(p: Pipeline, withWorker: boolean, work: (api: Api, worker?: Child) => Promise<T>): Promise<T> {
  await p.reset();
  const api = await p.startApi();
  const children = [api.child];
  try {
    if (withWorker) children.push(await p.startWorker(api));
    return await work(api, children[1]);
  } finally {
    await p.stop(children);
    await p.reset();
  }
}

/** One create window: the API process alone. */
export function measureCreate(p: Pipeline, kind: BenchKind, s: Shared): Promise<CreateWindow> {
  return inFreshProcesses(p, false, async (api) => ({
    ...(await runCreate(p, kind, api, s.receiver)),
    apiPeakRssKb: api.child.memoryKb('VmHWM'),
  }));
}

const rss = (api: Child, worker: Child) => ({ api: api.memoryKb('VmRSS'), worker: worker.memoryKb('VmRSS') });

/**
 * One end-to-end window: an API and a worker process. With `latency`, the latency phase follows in
 * the same processes (does their memory come back down once the backlog is gone?). `probe` is read
 * at the window's edges; by default the processes' resident sets.
 */
export function measureE2e(
  p: Pipeline,
  kind: BenchKind,
  s: Shared,
  o: { latency?: boolean; probe?: (api: Child, worker: Child) => Probe } = {},
): Promise<E2eWindow> {
  return inFreshProcesses(p, true, async (api, worker) => {
    const w = worker!;
    const e2e = await runE2e(p, kind, api, s, o.probe?.(api.child, w) ?? (async () => rss(api.child, w)));
    const rowsPerTask = p.name === 'service' ? await serviceRowsPerTask() : undefined;
    let latency: E2eWindow['latency'];
    if (o.latency) {
      const l = await runLatency(p, kind, api, s);
      // Let the last finished jobs be trimmed before counting what is left.
      await sleep(1000);
      latency = { ...l, rssKb: rss(api.child, w), redisKeys: await countKeys(s.redis, p.prefix) };
    }
    return { ...e2e, peakRssKb: { api: api.child.memoryKb('VmHWM'), worker: w.memoryKb('VmHWM') }, rowsPerTask, latency };
  });
}
