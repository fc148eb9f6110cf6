import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { ROOT } from './config';

/**
 * Child processes of the benchmark: started with `node --import tsx <script>` (tsx as a loader,
 * so the pid we hold is the process doing the work and its /proc entry is the one to sample),
 * watched for peak memory, and killed on every way out of the driver.
 */
export interface Child {
  name: string;
  pid: number;
  proc: ChildProcess;
  output(): string;
  /** VmHWM: the peak resident set since the process started, in kB (0 once it has exited). */
  peakRssKb(): number;
  rssKb(): number;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();
const exitHooks: (() => void)[] = [];

/** Kills the process on every way out of the driver (for children not started by startNode). */
export function track(proc: ChildProcess): void {
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
}

/** Runs `hook` (synchronously) on every way out of the driver, e.g. to stop a private Postgres. */
export function atExit(hook: () => void): () => void {
  exitHooks.push(hook);
  return () => {
    const i = exitHooks.indexOf(hook);
    if (i >= 0) exitHooks.splice(i, 1);
  };
}

export function killAll(): void {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  live.clear();
  for (const hook of exitHooks.splice(0)) {
    try {
      hook();
    } catch {
      /* best effort on the way out */
    }
  }
}

/** Whatever ends the driver (done, error, Ctrl-C), no child outlives it. */
export function installCleanup(): void {
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      console.error(`\n${signal}: killing child processes`);
      killAll();
      process.exit(130);
    });
  }
}

// Upstream settings of the caller's shell must not leak into the children (as in test/helpers/processes.ts).
const baseEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KLING_') && !k.startsWith('npm_')));

export interface StartOptions {
  nodeFlags?: string[];
  /** Opens an IPC channel (the simulator host is driven through it). */
  ipc?: boolean;
}

export function startNode(name: string, script: string, args: string[], env: Record<string, string>, opts: StartOptions = {}): Child {
  const proc = spawn(process.execPath, [...(opts.nodeFlags ?? []), '--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env: { ...baseEnv(), ...env },
    stdio: opts.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  let out = '';
  // Only the tail matters (for error reports); a chatty child must not grow the driver.
  const keep = (d: Buffer) => (out = (out + d.toString()).slice(-20_000));
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  void exited.then(() => live.delete(proc));
  const pid = proc.pid!;
  return {
    name,
    pid,
    proc,
    output: () => out,
    peakRssKb: () => readStatusKb(pid, 'VmHWM'),
    rssKb: () => readStatusKb(pid, 'VmRSS'),
    async stop(graceMs = 0) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
      const timer = graceMs > 0 ? setTimeout(() => proc.kill('SIGKILL'), graceMs) : undefined;
      await exited;
      clearTimeout(timer);
    },
  };
}

function readStatusKb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Polls `ready` until it holds; fails early with the child's output if the child dies. */
export async function waitUntil(child: Child, what: string, ready: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) {
      throw new Error(`${child.name} exited before ${what}:\n${child.output().slice(-3000)}`);
    }
    if (await Promise.resolve(ready()).catch(() => false)) return;
    if (Date.now() > until) throw new Error(`${child.name}: no ${what} within ${timeoutMs} ms:\n${child.output().slice(-3000)}`);
    await sleep(100);
  }
}

/** True once GET url answers 200 (used for the API processes' /healthz). */
export async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
  await res.arrayBuffer();
  return res.ok;
}

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Samples the resident set of some children once a second (to see growth within a phase). */
export function rssSampler(children: Child[]): { stop(): Record<string, number[]> } {
  const series: Record<string, number[]> = Object.fromEntries(children.map((c) => [c.name, []]));
  const timer = setInterval(() => {
    for (const c of children) series[c.name].push(c.rssKb());
  }, 1000);
  return {
    stop() {
      clearInterval(timer);
      return series;
    },
  };
}

/**
 * Established TCP connections of each process to a port (Redis, Postgres), from `ss`: what a
 * managed Redis or Postgres must accept per process. Empty when `ss` is not available.
 */
export function connectionsTo(port: number, pids: number[]): Record<number, number> {
  const counts: Record<number, number> = Object.fromEntries(pids.map((p) => [p, 0]));
  let out: string;
  try {
    out = execFileSync('ss', ['-Htnp', 'state', 'established', `( dport = :${port} )`], { encoding: 'utf8' });
  } catch {
    return {};
  }
  for (const m of out.matchAll(/pid=(\d+)/g)) {
    const pid = Number(m[1]);
    if (pid in counts) counts[pid]++;
  }
  return counts;
}
