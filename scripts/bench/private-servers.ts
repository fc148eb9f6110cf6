import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { atExit, freePort, sleep, track } from './procs';

/**
 * Profile mode only: a throwaway Postgres with pg_stat_statements preloaded (the shared server does
 * not preload it, and restarting it would break the test suite running next to us) and a
 * throwaway Redis whose INFO commandstats and SLOWLOG count nothing but the benchmark.
 */
export interface PrivateServer {
  url: string;
  stop(): Promise<void>;
}

const PG_BIN = '/usr/lib/postgresql/15/bin';

/** Postgres refuses to run as root: as root, its commands run as the `postgres` user. */
function pgCommand(bin: string, args: string[]): [string, string[]] {
  const exe = path.join(PG_BIN, bin);
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', exe, ...args]] : [exe, args];
}

export async function startPrivatePostgres(): Promise<PrivateServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktbench-pg-'));
  if (process.getuid?.() === 0) execFileSync('chown', ['postgres:postgres', dir]);
  const port = await freePort();
  const run = (bin: string, args: string[]) => {
    const [cmd, argv] = pgCommand(bin, args);
    execFileSync(cmd, argv, { stdio: 'pipe' });
  };
  run('initdb', ['-D', dir, '-U', 'postgres', '-A', 'trust', '--no-sync']);
  // Durability as on the shared server (fsync and synchronous_commit on): only the extension differs.
  const options = [
    `-p ${port}`,
    '-c listen_addresses=127.0.0.1',
    `-c unix_socket_directories=${dir}`,
    '-c shared_preload_libraries=pg_stat_statements',
    '-c pg_stat_statements.track=all',
    '-c pg_stat_statements.track_planning=on',
    '-c max_connections=200',
  ].join(' ');
  const stopNow = () => {
    try {
      run('pg_ctl', ['-D', dir, '-m', 'immediate', 'stop']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  run('pg_ctl', ['-D', dir, '-o', options, '-l', path.join(dir, 'server.log'), '-w', 'start']);
  const cancelHook = atExit(stopNow);
  return {
    url: `postgresql://postgres@127.0.0.1:${port}`,
    async stop() {
      cancelHook();
      stopNow();
    },
  };
}

export async function startPrivateRedis(): Promise<PrivateServer> {
  const port = await freePort();
  // Every command over 1 ms goes to the SLOWLOG (the shared server only logs those over 10 ms).
  const child: ChildProcess = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--slowlog-log-slower-than',
      '1000',
      '--slowlog-max-len',
      '1024',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  track(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const until = Date.now() + 10_000;
  while (!/Ready to accept connections/.test(out)) {
    if (Date.now() > until || child.exitCode !== null) throw new Error(`redis-server did not start:\n${out}`);
    await sleep(20);
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
}
