import { bench } from './config';
import { startNode, type Child } from './procs';

/** Messages between the driver and the simulator host (scripts/bench/sim-host.ts). */
export type SimRequest = { id: number; op: 'reset' | 'created' | 'callbacks' | 'settle' | 'callbackStats' | 'forget'; before?: number };
export type SimResponse = { id: number; value: unknown };

export interface SentCallbackTime {
  taskId: string;
  status: string;
  /** When the simulator started sending the callback (ms since epoch, same clock as the driver). */
  at: number;
}

/** Every callback attempt since the last reset, as the upstream saw it (an outside checker's view). */
export interface CallbackStats {
  sent: number;
  ok: number;
  /** No answer within the simulator's deadline (5 s). */
  timeouts: number;
  /** Refused, reset or closed before the answer ended. */
  connectionErrors: number;
  /** Answered outside 2xx. */
  non2xx: number;
  /** From the start of sending to the end of the answer (or the failure), over every attempt. */
  p50Ms: number;
  p99Ms: number;
}

export interface SimHandle {
  url: string;
  child: Child;
  reset(): Promise<void>;
  /** Upstream tasks created since the last reset, by kind id (`image-generation`, `text-to-video`). */
  created(): Promise<Record<string, number>>;
  callbacks(): Promise<SentCallbackTime[]>;
  /** Resolves once no callback or transition is pending in the simulator. */
  settle(): Promise<void>;
  callbackStats(): Promise<CallbackStats>;
  /** Forgets the upstream tasks that ended before `before` (ms), with what it recorded before then; resolves with how many. */
  forgetEnded(before: number): Promise<number>;
}

/** Starts the simulator host and returns a typed handle on its IPC channel. */
export async function startSimulator(): Promise<SimHandle> {
  const child = startNode(
    'simulator',
    'scripts/bench/sim-host.ts',
    [],
    { SIM_API_KEY: bench.upstreamKey, SIM_FILE_BASE_URL: bench.fileBaseUrl ?? '' },
    { ipc: true },
  );
  const pending = new Map<number, (value: unknown) => void>();
  let nextId = 1;
  const url = await new Promise<string>((resolve, reject) => {
    child.proc.once('exit', () => reject(new Error(`simulator exited:\n${child.output()}`)));
    child.proc.on('message', (r: SimResponse) => {
      if (r.id === 0) resolve(r.value as string);
      pending.get(r.id)?.(r.value);
      pending.delete(r.id);
    });
  });
  const ask = <T>(op: SimRequest['op'], before?: number) =>
    new Promise<T>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve as (value: unknown) => void);
      child.proc.send({ id, op, before } satisfies SimRequest);
    });
  return {
    url,
    child,
    reset: () => ask<void>('reset'),
    created: () => ask<Record<string, number>>('created'),
    callbacks: () => ask<SentCallbackTime[]>('callbacks'),
    settle: () => ask<void>('settle'),
    callbackStats: () => ask<CallbackStats>('callbackStats'),
    forgetEnded: (before) => ask<number>('forget', before),
  };
}
