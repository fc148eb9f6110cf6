import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type StopMode = 'fast' | 'immediate';

/**
 * A Postgres cluster of the soak's own, in a temporary directory on a free port, so that stopping it
 * never touches the machine's server. `initdb` refuses root: as root, every command runs as the
 * `postgres` OS user, which owns the directory.
 */
export interface PrivatePostgres {
  port: number;
  /** The server's log. */
  logFile: string;
  /** The URL of a database on this cluster. */
  url(database: string): string;
  start(): Promise<void>;
  /** `fast` shuts down cleanly; `immediate` is a crash (the next start replays the WAL). */
  stop(mode: StopMode): Promise<void>;
  /** Stops the cluster (immediately) and removes its directory; safe to call more than once, and from an exit handler. */
  destroySync(): void;
}

export async function createPrivatePostgres(dir: string, port: number): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  const owner = process.getuid?.() === 0 ? postgresUser() : undefined;
  const data = path.join(dir, 'data');
  fs.mkdirSync(dir, { recursive: true });
  if (owner) fs.chownSync(dir, owner.uid, owner.gid);
  // As root, through runuser; from the cluster's directory, which that user can enter.
  const command = (tool: string, args: string[]): [string, string[]] =>
    owner ? ['runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args]] : [path.join(bin, tool), args];
  const exec = async (tool: string, args: string[]) => {
    const [file, argv] = command(tool, args);
    await run(file, argv, { cwd: dir });
  };
  await exec('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200`;
  let destroyed = false;
  const logFile = path.join(dir, 'postgres.log');
  const pg: PrivatePostgres = {
    port,
    logFile,
    url: (database) => `postgresql://postgres@127.0.0.1:${port}/${database}`,
    start: () => exec('pg_ctl', ['-D', data, '-o', options, '-l', logFile, '-w', '-t', '60', 'start']),
    stop: (mode) => exec('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']),
    destroySync() {
      if (destroyed) return;
      destroyed = true;
      const [file, argv] = command('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      try {
        execFileSync(file, argv, { cwd: dir, stdio: 'ignore' });
      } catch {
        // Not running.
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return pg;
}

/** `pg_config --bindir`, or the newest version under /usr/lib/postgresql (Debian keeps the server binaries off PATH). */
function postgresBinDir(): string {
  const candidates: string[] = [];
  try {
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim());
  } catch {
    // No pg_config on PATH.
  }
  const debian = '/usr/lib/postgresql';
  if (fs.existsSync(debian)) {
    const versions = fs.readdirSync(debian).sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => path.join(debian, v, 'bin')));
  }
  const found = candidates.find((d) => fs.existsSync(path.join(d, 'initdb')) && fs.existsSync(path.join(d, 'pg_ctl')));
  if (!found)
    throw new Error(
      'soak: no PostgreSQL server binaries found (initdb, pg_ctl); looked in pg_config --bindir and /usr/lib/postgresql/*/bin',
    );
  return found;
}

function postgresUser(): { uid: number; gid: number } {
  const [uid, gid] = ['-u', '-g'].map((flag) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim()));
  return { uid, gid };
}
