import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { EXIT_WITH_PARENT, freePort } from '../../scripts/lib/local-services';
import { builtScript } from './built';

export { freePort };

const ROOT = path.resolve(__dirname, '..', '..');

export interface Proc {
  child: ChildProcess;
  output(): string;
  /** Resolves when the process has exited (with its exit code, or null when killed by a signal). */
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts the service (src/main.ts compiled; `npm start` runs the same code through tsx) as a real
 * process with `env` on top of the parent's environment minus any upstream settings, and waits
 * until it logs `ready`.
 */
export async function startProcess(env: Record<string, string>, ready: RegExp, timeoutMs = 30_000): Promise<Proc> {
  // Readiness is read from the log, so it must not be silent.
  return startScript('src/main.ts', { ...env, LOG_LEVEL: 'info' }, /^KLING_/, ready, timeoutMs);
}

/**
 * `npm run simulator` as a real process with `env` on top of the parent's environment minus its
 * upstream and simulator settings; resolves once it listens, with its base URL.
 */
export async function startSimulatorProcess(env: Record<string, string>): Promise<Proc & { url: string }> {
  const listening = /listening on (\S+)/;
  const proc = await startScript('scripts/simulator.ts', env, /^(KLING_|SIMULATOR_)/, listening, 30_000);
  return { ...proc, url: listening.exec(proc.output())![1] };
}

/** Runs `script` with `env` on top of the parent's environment minus the variables `drop` matches, until its output matches `ready`. */
async function startScript(script: string, env: Record<string, string>, drop: RegExp, ready: RegExp, timeoutMs: number): Promise<Proc> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !drop.test(k)));
  // One process running the script's compiled JavaScript (test/helpers/built.ts), as `node` runs it;
  // it ends by itself if this jest worker is killed without the chance to kill it.
  const child = spawn(process.execPath, [...EXIT_WITH_PARENT, builtScript(script)], {
    cwd: ROOT,
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const until = Date.now() + timeoutMs;
  while (!ready.test(out)) {
    if (Date.now() > until || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`${script} did not become ready:\n${out.slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return asProc(child, () => out, exited);
}

/**
 * `npm run cli -- ARGS` as an operator runs it (src/cli/cli.ts compiled), with `env` on top of the
 * parent's environment and its logs silenced; resolves once it has exited and its output is read.
 */
export function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [builtScript('src/cli/cli.ts'), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env, LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

/** Worker processes (ROLE=worker) of the service `env()` describes, each killed with SIGKILL by `killAll`. */
export function workerProcesses(env: () => Record<string, string>) {
  const procs: Proc[] = [];
  return {
    async start(): Promise<Proc> {
      const p = await startProcess({ ...env(), ROLE: 'worker' }, /workers started/);
      procs.push(p);
      return p;
    },
    killAll: () => Promise.all(procs.splice(0).map((p) => p.kill('SIGKILL'))),
  };
}

/** A private Redis for tests that stop and restart it (the machine's own Redis serves other tests); `args` adds to its command line. */
export async function startRedis(port: number, args: string[] = []): Promise<Proc> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const until = Date.now() + 10_000;
  while (!/Ready to accept connections/.test(out)) {
    if (Date.now() > until || child.exitCode !== null) throw new Error(`redis-server did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return asProc(child, () => out, exited);
}

function asProc(child: ChildProcess, output: () => string, exited: Promise<number | null>): Proc {
  return {
    child,
    output,
    exited,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
