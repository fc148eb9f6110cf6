import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { track } from './cleanup';
import { EXIT_WITH_PARENT } from '../lib/local-services';

const ROOT = path.resolve(__dirname, '..', '..');
const READY = { api: /"msg":"API listening"/, worker: /"msg":"workers started"/ };
/** A start that fails (Postgres down during its migration check) is tried again, as a supervisor would, for this long. */
const START_DEADLINE_MS = 120_000;

export interface UnexpectedExit {
  process: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  tail: string;
}

/**
 * One process of the service, started as `npm start` does (`node --import tsx src/main.ts`: tsx as
 * a loader, so a SIGKILL reaches the process doing the work) with ROLE=api or worker. Its log goes
 * to `<logDir>/<name>.log` across restarts. One that exits without being told to is recorded and
 * started again, as a supervisor would.
 */
export class ServiceProcess {
  readonly unexpectedExits: UnexpectedExit[] = [];
  private child?: ChildProcess;
  /** The child that last reported ready. */
  private readyChild?: ChildProcess;
  private exited: Promise<void> = Promise.resolve();
  private tail = '';
  private stopping = false;
  private starting?: Promise<void>;
  private readonly log: fs.WriteStream;

  constructor(
    readonly name: string,
    readonly role: 'api' | 'worker',
    private readonly env: Record<string, string>,
    logDir: string,
  ) {
    this.log = fs.createWriteStream(path.join(logDir, `${name}.log`), { flags: 'a' });
    this.log.on('error', () => undefined);
  }

  /** Starts the process and resolves once it is ready, trying again while it exits early; one start at a time. */
  start(): Promise<void> {
    this.starting ??= this.startUntilReady().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async startUntilReady(): Promise<void> {
    const until = Date.now() + START_DEADLINE_MS;
    while (!this.stopping) {
      if (await this.startOnce()) return;
      if (Date.now() > until) throw new Error(`soak: ${this.name} did not start within ${START_DEADLINE_MS} ms:\n${this.tail}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  async kill(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM (graceful shutdown), SIGKILL if it has not exited after `graceMs`; no restart after this. */
  async stop(graceMs = 30_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    await new Promise((r) => this.log.end(r));
  }

  // Output may still arrive after the exit that let stop() end the log.
  private write(data: string | Buffer): void {
    if (!this.log.writableEnded) this.log.write(data);
  }

  private async startOnce(): Promise<boolean> {
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KLING_') && !k.startsWith('npm_')));
    const child = track(
      spawn(process.execPath, [...EXIT_WITH_PARENT, '--import', 'tsx', 'src/main.ts'], {
        cwd: ROOT,
        env: { ...base, ...this.env, ROLE: this.role },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    this.child = child;
    this.write(`--- ${new Date().toISOString()} soak: starting ${this.name} (pid ${child.pid})\n`);
    let startup = '';
    const keep = (d: Buffer) => {
      this.write(d);
      this.tail = (this.tail + d.toString()).slice(-8000);
      if (startup.length < 200_000) startup += d.toString();
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.write(`--- ${new Date().toISOString()} soak: ${this.name} exited (code ${code}, signal ${signal})\n`);
        resolve();
        this.onExit(child, code, signal);
      }),
    );
    while (!READY[this.role].test(startup)) {
      if (child.exitCode !== null || child.signalCode !== null) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
    this.readyChild = child;
    return true;
  }

  // Exits during a start are the start's business (it tries again); only a ready process that dies
  // without being told to counts, and is started again.
  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child || this.readyChild !== child || this.stopping) return;
    this.child = undefined;
    this.unexpectedExits.push({ process: this.name, code, signal, tail: this.tail });
    void this.start().catch(() => undefined);
  }
}
