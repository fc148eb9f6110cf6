import http from 'node:http';
import { sleep } from './procs';

/**
 * Creates tasks through an API (the service's or the bare one), round-robin over its processes,
 * on kept-alive connections so that connection setup is not what gets measured.
 */
export interface CreateClient {
  /** Resolves with the new task id, or null when the API did not accept the task. */
  create(): Promise<string | null>;
  errors(): number;
  close(): void;
}

export function createClient(apiUrls: string[], headers: Record<string, string>, body: Record<string, unknown>): CreateClient {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
  const payload = JSON.stringify(body);
  const allHeaders = { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) };
  let next = 0;
  let errors = 0;
  const post = (base: string) =>
    new Promise<string | null>((resolve) => {
      const req = http.request(`${base}/v1/images/generations`, { method: 'POST', agent, headers: allHeaders }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            const json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data?: { task_id?: string } };
            if (res.statusCode === 200 && json.data?.task_id) return resolve(json.data.task_id);
          } catch {
            /* counted below */
          }
          errors++;
          resolve(null);
        });
      });
      req.on('error', () => {
        errors++;
        resolve(null);
      });
      req.end(payload);
    });
  return {
    create: () => post(apiUrls[next++ % apiUrls.length]),
    errors: () => errors,
    close: () => agent.destroy(),
  };
}

export interface Feeder {
  /** Ids of the tasks accepted so far, in acceptance order. */
  ids: string[];
  stop(): Promise<void>;
}

/**
 * Closed loop: keeps about `backlog` tasks outstanding (accepted, not yet finished), so that the
 * pipeline always has work waiting and the arrival rate settles at the completion rate.
 */
export function closedLoopFeeder(client: CreateClient, concurrency: number, backlog: number, finished: () => number): Feeder {
  const ids: string[] = [];
  let stopped = false;
  const loop = async () => {
    while (!stopped) {
      if (ids.length - finished() >= backlog) {
        await sleep(5);
        continue;
      }
      const id = await client.create();
      if (id) ids.push(id);
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  return {
    ids,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/**
 * Open loop at a fixed arrival rate, whatever the answers do (a steady, moderate load), for
 * `durationMs`; resolves once every request sent has been answered.
 */
export async function fixedRateFeeder(client: CreateClient, perSecond: number, durationMs: number): Promise<string[]> {
  const ids: string[] = [];
  const inFlight: Promise<void>[] = [];
  const start = Date.now();
  const total = Math.round((perSecond * durationMs) / 1000);
  for (let i = 0; i < total; i++) {
    // Scheduled against the start time, so timer drift does not lower the rate.
    const due = start + (i * 1000) / perSecond;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    inFlight.push(client.create().then((id) => void (id && ids.push(id))));
  }
  await Promise.all(inFlight);
  return ids;
}

/** Waits until every id in `ids` has finished (bounded), polling `isDone`. */
export async function drain(ids: string[], isDone: (id: string) => boolean, timeoutMs: number): Promise<number> {
  const until = Date.now() + timeoutMs;
  let open = ids.filter((id) => !isDone(id));
  while (open.length > 0 && Date.now() < until) {
    await sleep(200);
    open = open.filter((id) => !isDone(id));
  }
  return open.length;
}
