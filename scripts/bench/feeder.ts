import http from 'node:http';
import type { Redis } from 'ioredis';
import { bench, type BenchKind } from './config';
import type { Api, Pipeline } from './pipelines';
import { sleep } from './procs';
import type { Receiver } from './receiver';
import type { SimHandle } from './sim-protocol';

/**
 * Creates tasks of one kind through an API (the service's or the bare one), on kept-alive
 * connections so that connection setup is not what gets measured.
 */
export interface CreateClient {
  /** Resolves with the new task id, or null when the API did not accept the task. */
  create(): Promise<string | null>;
  errors(): number;
  close(): void;
}

/** What every phase shares: the upstream, the client's webhook receiver, Redis. */
export interface Shared {
  sim: SimHandle;
  receiver: Receiver;
  redis: Redis;
}

/**
 * Every measuring phase starts the same way: empty receiver and simulator, then a client. Its tasks
 * name the receiver as `callback_url`, unless `withCallback` is false (no client webhooks at all).
 */
export async function startPhase(p: Pipeline, kind: BenchKind, api: Api, s: Shared, withCallback = true): Promise<CreateClient> {
  s.receiver.reset();
  await s.sim.reset();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
  const payload = JSON.stringify(withCallback ? { ...kind.body, callback_url: s.receiver.url } : kind.body);
  const headers = { ...p.headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) };
  let errors = 0;
  const create = () =>
    new Promise<string | null>((resolve) => {
      const failed = () => (errors++, resolve(null));
      const req = http.request(`${api.url}${kind.path}`, { method: 'POST', agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            const json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data?: { task_id?: string } };
            if (res.statusCode === 200 && json.data?.task_id) return resolve(json.data.task_id);
          } catch {
            /* counted below */
          }
          failed();
        });
      });
      req.on('error', failed);
      req.end(payload);
    });
  return { create, errors: () => errors, close: () => agent.destroy() };
}

/**
 * Closed loop: keeps about `BENCH_BACKLOG` tasks outstanding (accepted, not yet finished), so that
 * the pipeline always has work waiting and the arrival rate settles at the completion rate.
 */
export function closedLoopFeeder(client: CreateClient, finished: () => number): { ids: string[]; stop(): Promise<void> } {
  const ids: string[] = [];
  let stopped = false;
  const loop = async () => {
    while (!stopped) {
      if (ids.length - finished() >= bench.e2eBacklog) await sleep(5);
      else {
        const id = await client.create();
        if (id) ids.push(id);
      }
    }
  };
  const loops = Array.from({ length: bench.feederConcurrency }, loop);
  return { ids, stop: async () => void ((stopped = true), await Promise.all(loops)) };
}

/**
 * Open loop at a fixed arrival rate, whatever the answers do (a steady, moderate load), for
 * `durationMs`; resolves once every request sent has been answered.
 */
export async function fixedRateFeeder(client: CreateClient, perSecond: number, durationMs: number): Promise<string[]> {
  const ids: string[] = [];
  const inFlight: Promise<void>[] = [];
  const start = Date.now();
  for (let i = 0; i < Math.round((perSecond * durationMs) / 1000); i++) {
    // Scheduled against the start time, so timer drift does not lower the rate.
    const wait = start + (i * 1000) / perSecond - Date.now();
    if (wait > 0) await sleep(wait);
    inFlight.push(client.create().then((id) => void (id && ids.push(id))));
  }
  await Promise.all(inFlight);
  return ids;
}

/** Waits (bounded by BENCH_DRAIN_TIMEOUT_MS) until every task's `succeed` webhook came; returns how many did not. */
export async function drain(ids: string[], receiver: Receiver): Promise<number> {
  const until = Date.now() + bench.drainTimeoutMs;
  let open = ids.filter((id) => !receiver.hasSucceeded(id));
  while (open.length > 0 && Date.now() < until) {
    await sleep(200);
    open = open.filter((id) => !receiver.hasSucceeded(id));
  }
  return open.length;
}
