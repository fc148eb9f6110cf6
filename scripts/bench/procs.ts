import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { ROOT } from './config';
import { EXIT_WITH_PARENT } from '../lib/local-services';

/**
 * Child processes of the benchmark: started with `node --import tsx <script>` (tsx as a loader,
 * so the pid we hold is the process doing the work and its /proc entry is the one to read), and
 * killed on every way out of the driver; a driver killed with SIGKILL leaves none for long
 * (EXIT_WITH_PARENT).
 */
export interface Child {
  name: string;
  pid: number;
  proc: ChildProcess;
  /** The tail of its stdout and stderr. */
  output(): string;
  /** From /proc/<pid>/status, in kB (0 once it has exited): VmHWM is the peak since it started. */
  memoryKb(field: 'VmRSS' | 'VmHWM'): number;
  /** SIGTERM, then SIGKILL after `graceMs` (at once without it); resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();

export function killAll(): void {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  live.clear();
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

/** `ipc` opens the channel the simulator host is driven through; `nodeFlags` come before the script (--cpu-prof). */
export function startNode(
  name: string,
  script: string,
  args: string[],
  env: Record<string, string>,
  o: { ipc?: boolean; nodeFlags?: string[] } = {},
): Child {
  const proc = spawn(process.execPath, [...EXIT_WITH_PARENT, ...(o.nodeFlags ?? []), '--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env: { ...baseEnv(), ...env },
    stdio: o.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  let out = '';
  // Only the tail matters (for error reports); a chatty child must not grow the driver.
  const keep = (d: Buffer) => (out = (out + d.toString()).slice(-20_000));
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve(void live.delete(proc))));
  return {
    name,
    pid: proc.pid!,
    proc,
    output: () => out,
    memoryKb(field) {
      try {
        return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'))?.[1] ?? 0);
      } catch {
        return 0;
      }
    },
    async stop(graceMs = 0) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
      const timer = graceMs > 0 ? setTimeout(() => proc.kill('SIGKILL'), graceMs) : undefined;
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls `ready` until it holds (bounded); fails early with the child's output if the child dies. */
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

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
