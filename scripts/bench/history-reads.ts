import autocannon from 'autocannon';
import { bench, history, type BenchKind } from './config';
import type { Api, Pipeline } from './pipelines';
import { progress } from './stats';

/** The reads a client makes of its tasks, each measured on its own. */
export const READS = ['get by id', 'get by external id', 'list page 1', 'list page 1000'] as const;
export type ReadName = (typeof READS)[number];

export interface ReadResult {
  /** Answers with 2xx per second over the measured run. */
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Non-2xx answers, timeouts and transport errors: the target is zero. */
  errors: number;
  /** Tasks in one answer (a list's page; 1 for a task found). */
  items: number;
}

export interface ReadSample {
  ids: string[];
  externalIds: string[];
}

/** Each read's paths, taken in turn: every request a different task of the sample. */
function pathsOf(kind: BenchKind, sample: ReadSample): Record<ReadName, string[]> {
  const page = (n: number) => [`${kind.path}?pageNum=${n}&pageSize=${history.pageSize}`];
  return {
    'get by id': sample.ids.map((id) => `${kind.path}/${encodeURIComponent(id)}`),
    'get by external id': sample.externalIds.map((id) => `${kind.path}?external_task_id=${encodeURIComponent(id)}`),
    'list page 1': page(1),
    'list page 1000': page(1000),
  };
}

function cannon(api: Api, p: Pipeline, paths: string[], seconds: number): Promise<autocannon.Result> {
  let next = 0;
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: api.url,
        connections: bench.createConnections,
        duration: seconds,
        headers: p.headers,
        requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: paths[next++ % paths.length] }) }],
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
  });
}

/** How many tasks one answer holds (checked once, so that a page past the end is told from a full one). */
async function itemsOf(api: Api, p: Pipeline, path: string): Promise<number> {
  const res = await fetch(`${api.url}${path}`, { headers: p.headers });
  const body = (await res.json()) as { data?: unknown };
  if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
  return Array.isArray(body.data) ? body.data.length : body.data ? 1 : 0;
}

/**
 * The reads against one API process alone (no worker: nothing else runs), each with a short warm-up,
 * with `BENCH_HISTORY_READ_S` measured at the create phase's concurrency.
 */
export async function measureReads(p: Pipeline, kind: BenchKind, sample: ReadSample): Promise<Record<ReadName, ReadResult>> {
  const api = await p.startApi();
  try {
    const results = {} as Record<ReadName, ReadResult>;
    for (const [name, paths] of Object.entries(pathsOf(kind, sample)) as [ReadName, string[]][]) {
      if (!paths.length) throw new Error(`${p.name}: no tasks to ${name} (the seed has none of ${kind.id} for the tenant)`);
      const items = await itemsOf(api, p, paths[0]);
      await cannon(api, p, paths, history.readWarmupS);
      const r = await cannon(api, p, paths, history.readS);
      results[name] = {
        perSecond: r['2xx'] / history.readS,
        p50Ms: r.latency.p50,
        p99Ms: r.latency.p99,
        errors: r.errors + r.timeouts + r.non2xx,
        items,
      };
      progress(`${p.name} ${kind.name}: ${name} ${results[name].perSecond.toFixed(0)}/s, p99 ${r.latency.p99} ms, ${items} per answer`);
    }
    return results;
  } finally {
    await p.stop([api.child]);
  }
}
