import autocannon from 'autocannon';
import { bench, taskBody } from './config';
import { processCpuMs } from './cpu';
import type { Api, Pipeline } from './pipelines';
import { progress } from './stats';

export interface CreateResult {
  /** Accepted (2xx) creates per second over the measured run. */
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  accepted: number;
  /** Transport errors, timeouts and non-2xx answers: the target is zero. */
  errors: number;
  /** Accepted per second in the first and the last fifth of the run (does the rate hold?). */
  firstRate: number;
  lastRate: number;
  /** CPU of the API process per accepted create, and its share of one core during the run. */
  apiCpuMsPerCreate: number;
  apiCpuPct: number;
}

export function cannon(api: Api, pipeline: Pipeline, body: string, seconds: number, perSecond?: number[]): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const instance = autocannon(
      {
        url: `${api.url}/v1/images/generations`,
        method: 'POST',
        connections: bench.createConnections,
        duration: seconds,
        headers: { ...pipeline.headers, 'content-type': 'application/json' },
        body,
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
    if (perSecond) {
      instance.on('response', (_client: unknown, status: number) => {
        if (status >= 200 && status < 300) {
          const second = Math.floor((Date.now() - started) / 1000);
          perSecond[second] = (perSecond[second] ?? 0) + 1;
        }
      });
    }
  });
}

/**
 * POST /v1/images/generations at 50 connections against the API process alone (no worker runs, so
 * the API has the machine to itself, and the tasks it accepts wait in the queue). A short warm-up
 * run first (JIT, connection pools), then the measured one.
 */
export async function runCreate(pipeline: Pipeline, api: Api, callbackUrl: string): Promise<CreateResult> {
  const body = JSON.stringify(taskBody(callbackUrl));
  progress(`${pipeline.kind}: create warm-up ${bench.createWarmupS}s`);
  await cannon(api, pipeline, body, bench.createWarmupS);
  // The warm-up's tasks would make the measured run start with a fuller table than the other pipeline's.
  await pipeline.reset();
  progress(`${pipeline.kind}: create, ${bench.createConnections} connections, ${bench.createDurationS}s`);
  const perSecond: number[] = [];
  const cpuBefore = processCpuMs(api.child.pid);
  const r = await cannon(api, pipeline, body, bench.createDurationS, perSecond);
  const apiCpuMs = processCpuMs(api.child.pid) - cpuBefore;
  const seconds = Array.from({ length: bench.createDurationS }, (_, i) => perSecond[i] ?? 0);
  const fifth = Math.max(1, Math.floor(seconds.length / 5));
  const rate = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const result: CreateResult = {
    perSecond: r['2xx'] / bench.createDurationS,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    accepted: r['2xx'],
    errors: r.errors + r.timeouts + r.non2xx,
    firstRate: rate(seconds.slice(0, fifth)),
    lastRate: rate(seconds.slice(-fifth)),
    apiCpuMsPerCreate: apiCpuMs / Math.max(r['2xx'], 1),
    apiCpuPct: (100 * apiCpuMs) / (bench.createDurationS * 1000),
  };
  progress(
    `${pipeline.kind}: create ${result.perSecond.toFixed(0)}/s (first ${result.firstRate.toFixed(0)}/s, last ${result.lastRate.toFixed(0)}/s), ` +
      `p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, errors ${result.errors}`,
  );
  return result;
}
