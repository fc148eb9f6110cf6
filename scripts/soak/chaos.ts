import type { KlingSimulator } from '../../src/simulator/kling-simulator';
import type { PrivatePostgres, StopMode } from './private-postgres';
import type { PrivateRedis } from './private-redis';
import type { Random } from './random';
import type { ServiceProcess } from './service-process';

export const FAULTS = ['api-kill', 'worker-kill', 'redis-restart', 'postgres-restart', 'upstream-errors', 'callbacks-dropped'] as const;
export type FaultName = (typeof FAULTS)[number];

export interface FaultRecord {
  name: FaultName;
  /** Ms since the soak started. */
  atMs: number;
  detail: string;
}

export interface ChaosTargets {
  apis: ServiceProcess[];
  workers: ServiceProcess[];
  redis: PrivateRedis;
  postgres: PrivatePostgres;
  sim: KlingSimulator;
}

export interface ChaosOptions {
  random: Random;
  /** Pause before each fault, drawn in [min, max] ms. */
  gapMs: readonly [number, number];
  startedAt: number;
  log(line: string): void;
}

export interface Chaos {
  faults: FaultRecord[];
  /** Faults that could not be carried out (a process that would not start again, ...). */
  errors: string[];
  /** Starts no more faults and waits until every one under way has put things back. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Faults at random intervals while the load runs, drawn from a shuffled deck of every kind so that
 * each kind comes once in every round of six. Faults overlap (a worker may be killed while Postgres
 * is down); two faults on the same thing wait for each other.
 */
export function startChaos(t: ChaosTargets, o: ChaosOptions): Chaos {
  const faults: FaultRecord[] = [];
  const errors: string[] = [];
  const deck: FaultName[] = [];
  const underWay = new Set<Promise<void>>();
  const chains = new Map<string, Promise<unknown>>();
  let stopped = false;
  let wake: () => void = () => undefined;

  // One fault at a time per target; the parameters are drawn before any wait, so a seed replays them.
  const serial = (target: string, work: () => Promise<void>) => {
    const next = (chains.get(target) ?? Promise.resolve()).then(work);
    chains.set(
      target,
      next.catch(() => undefined),
    );
    return next;
  };
  // Logs the fault, and again when its target is back (a slow recovery shows in the timeline).
  const record = (name: FaultName, detail: string) => {
    const at = Date.now();
    faults.push({ name, atMs: at - o.startedAt, detail });
    o.log(`fault ${name}: ${detail}`);
    return () => o.log(`fault ${name} over after ${((Date.now() - at) / 1000).toFixed(1)} s`);
  };

  const restart = (name: FaultName, group: ServiceProcess[]) => {
    const proc = o.random.pick(group);
    const downMs = o.random.int(200, 2000);
    return serial(proc.name, async () => {
      const over = record(name, `SIGKILL ${proc.name}, started again after ${downMs} ms`);
      await proc.kill();
      await sleep(downMs);
      await proc.start();
      over();
    });
  };
  const run: Record<FaultName, () => Promise<void>> = {
    'api-kill': () => restart('api-kill', t.apis),
    'worker-kill': () => restart('worker-kill', t.workers),
    'redis-restart': () => {
      const downMs = o.random.int(500, 3000);
      return serial('redis', async () => {
        const over = record('redis-restart', `SIGKILL, down ${downMs} ms, back empty`);
        await t.redis.kill();
        await sleep(downMs);
        await t.redis.start();
        over();
      });
    },
    'postgres-restart': () => {
      const mode: StopMode = o.random.pick(['fast', 'immediate'] as const);
      const downMs = o.random.int(500, 3000);
      return serial('postgres', async () => {
        const over = record('postgres-restart', `stop -m ${mode}, down ${downMs} ms`);
        await t.postgres.stop(mode);
        await sleep(downMs);
        await t.postgres.start();
        over();
      });
    },
    'upstream-errors': () => {
      const error = o.random.chance(0.5)
        ? { http: 500, code: 5000, message: 'internal error' }
        : { http: 429, code: 1303, message: 'parallel task over resource pack limit' };
      const forMs = o.random.int(1500, 5000);
      return serial('upstream', async () => {
        const over = record('upstream-errors', `every create answers ${error.code} for ${forMs} ms`);
        t.sim.faults.createOutage = error;
        await sleep(forMs);
        t.sim.faults.createOutage = undefined;
        over();
      });
    },
    'callbacks-dropped': () => {
      const forMs = o.random.int(2000, 8000);
      return serial('callbacks', async () => {
        const over = record('callbacks-dropped', `no upstream callback sent for ${forMs} ms`);
        t.sim.faults.loseCallbacks = true;
        await sleep(forMs);
        t.sim.faults.loseCallbacks = false;
        over();
      });
    },
  };

  const loop = (async () => {
    while (!stopped) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, o.random.int(o.gapMs[0], o.gapMs[1]));
        wake = () => (clearTimeout(timer), resolve());
      });
      if (stopped) break;
      if (!deck.length) deck.push(...o.random.shuffle(FAULTS));
      const name = deck.shift()!;
      const p = run[name]()
        .catch((err: Error) => void errors.push(`${name}: ${err.message}`))
        .finally(() => underWay.delete(p));
      underWay.add(p);
    }
  })();

  return {
    faults,
    errors,
    async stop() {
      stopped = true;
      wake();
      await loop;
      await Promise.all(underWay);
    },
  };
}
