import autocannon from 'autocannon';
import { bench, type BenchKind } from './config';
import type { Api, Pipeline } from './pipelines';
import type { Receiver } from './receiver';
import { progress } from './stats';

export interface CreateResult {
  /** Accepted (2xx) creates per second over the measured run. */
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Transport errors, timeouts and non-2xx answers: the target is zero. */
  errors: number;
}

function cannon(api: Api, p: Pipeline, kind: BenchKind, body: string, seconds: number): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `${api.url}${kind.path}`,
        method: 'POST',
        connections: bench.createConnections,
        duration: seconds,
        headers: { ...p.headers, 'content-type': 'application/json' },
        body,
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
  });
}

/**
 * Creates at 50 connections against the API process alone (no worker runs, so the API has the
 * machine to itself, and the tasks it accepts wait in the queue). A short warm-up run first (JIT,
 * connection pools), then the measured one.
 */
export async function runCreate(p: Pipeline, kind: BenchKind, api: Api, receiver: Receiver): Promise<CreateResult> {
  const body = JSON.stringify({ ...kind.body, callback_url: receiver.url });
  progress(`${p.name} ${kind.name}: create warm-up ${bench.createWarmupS}s`);
  await cannon(api, p, kind, body, bench.createWarmupS);
  // The warm-up's tasks would make the measured run start with a fuller table than the other pipeline's.
  await p.reset();
  progress(`${p.name} ${kind.name}: create, ${bench.createConnections} connections, ${bench.createDurationS}s`);
  const r = await cannon(api, p, kind, body, bench.createDurationS);
  const result = {
    perSecond: r['2xx'] / bench.createDurationS,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    errors: r.errors + r.timeouts + r.non2xx,
  };
  progress(
    `${p.name} ${kind.name}: create ${result.perSecond.toFixed(0)}/s, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, errors ${result.errors}`,
  );
  return result;
}
