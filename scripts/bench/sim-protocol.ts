import { bench } from './config';
import { startNode, type Child } from './procs';

/** Messages between the driver and the simulator host (scripts/bench/sim-host.ts). */
export type SimRequest = { id: number; op: 'reset' | 'stats' | 'callbacks' };

export interface SimStats {
  /** Upstream tasks created since the last reset. */
  created: number;
  distinctExternalIds: number;
  callbacksSent: number;
  callbacksFailed: number;
  byCallbackOrigin: Record<string, number>;
}

export interface SentCallbackTime {
  taskId: string;
  status: string;
  /** When the simulator started sending the callback (ms since epoch, same clock as the driver). */
  at: number;
}

export type SimResponse = { id: number; url?: string; ok?: boolean; stats?: SimStats; callbacks?: SentCallbackTime[] };

export interface SimHandle {
  url: string;
  child: Child;
  reset(): Promise<void>;
  stats(): Promise<SimStats>;
  callbacks(): Promise<SentCallbackTime[]>;
}

/** Starts the simulator host and returns a typed handle on its IPC channel. */
export async function startSimulator(): Promise<SimHandle> {
  const child = startNode('simulator', 'scripts/bench/sim-host.ts', [], { SIM_API_KEY: bench.upstreamKey }, { ipc: true });
  const pending = new Map<number, (r: SimResponse) => void>();
  let nextId = 1;
  const url = await new Promise<string>((resolve, reject) => {
    child.proc.once('exit', () => reject(new Error(`simulator exited:\n${child.output()}`)));
    child.proc.on('message', (r: SimResponse) => {
      if (r.id === 0 && r.url) resolve(r.url);
      pending.get(r.id)?.(r);
      pending.delete(r.id);
    });
  });
  const ask = (op: SimRequest['op']) =>
    new Promise<SimResponse>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      child.proc.send({ id, op } satisfies SimRequest);
    });
  return {
    url,
    child,
    reset: async () => void (await ask('reset')),
    stats: async () => (await ask('stats')).stats!,
    callbacks: async () => (await ask('callbacks')).callbacks!,
  };
}
