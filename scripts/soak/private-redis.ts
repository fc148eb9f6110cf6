import { spawn, type ChildProcess } from 'node:child_process';
import { track } from './cleanup';

/** A Redis of the soak's own, without persistence: every restart brings it back empty, the worst case. */
export interface PrivateRedis {
  port: number;
  url: string;
  start(): Promise<void>;
  /** SIGKILL; resolves once it has exited. */
  kill(): Promise<void>;
}

export function privateRedis(port: number, dir: string): PrivateRedis {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
      const proc = track(spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
      child = proc;
      exited = new Promise((resolve) => proc.once('exit', () => resolve()));
      let out = '';
      proc.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-5000)));
      const until = Date.now() + 10_000;
      while (!/Ready to accept connections/.test(out)) {
        if (Date.now() > until || proc.exitCode !== null) throw new Error(`soak: redis-server did not start:\n${out}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async kill() {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
