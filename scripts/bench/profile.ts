/**
 * `npm run bench -- --profile`: where the time of a task goes. One end-to-end window per kind and
 * pipeline, every process under test running with `node --cpu-prof`; prints the CPU time each
 * process spent per finished task and keeps the CPU profiles. Its rates carry the profiler's
 * overhead: the figures of record come from the plain run.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { databaseName, maintenanceUrl } from '../../src/db/migrate';
import { bench } from './config';
import type { Shared } from './feeder';
import { measureE2e } from './measure';
import type { Pipeline } from './pipelines';
import { fmt, textTable } from './stats';

/** utime + stime from /proc/<pid>/stat, in ms (USER_HZ is 100 on every mainstream Linux); 0 once the process is gone. */
function cpuMs(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields are counted after the last ')': the command name may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
}

/**
 * CPU of the Postgres backends of one database. Pools open and close connections, so summing the
 * live ones at two moments would lose those that exited between: each one's growth is accumulated.
 */
async function trackBackends(url: string): Promise<{ totalMs(): Promise<number>; stop(): Promise<void> }> {
  const client = new Client({ connectionString: maintenanceUrl(url) });
  await client.connect();
  const last = new Map<number, number>();
  let total = 0;
  let first = true;
  const tick = async () => {
    for (const { pid } of (await client.query('SELECT pid FROM pg_stat_activity WHERE datname = $1', [databaseName(url)])).rows) {
      const now = cpuMs(pid);
      // Backends present at the start count from then; later ones from their birth.
      total += Math.max(0, now - (last.get(pid) ?? (first ? now : 0)));
      last.set(pid, now);
    }
    first = false;
  };
  await tick();
  const timer = setInterval(() => void tick().catch(() => undefined), 500);
  return { totalMs: async () => (await tick(), total), stop: async () => (clearInterval(timer), await client.end()) };
}

export async function runProfile(pipelines: Pipeline[], s: Shared, dir: string): Promise<string> {
  // Inherited by the service processes: after SIGTERM they exit, writing their profile, within 3 s.
  process.env.SHUTDOWN_TIMEOUT_MS = '3000';
  const columns: string[] = [];
  const perTask: Record<string, number>[] = [];
  for (const kind of bench.kinds) {
    for (const p of pipelines) {
      const backends = await trackBackends(p.dbUrl);
      const profiled: Record<string, number> = {};
      const w = await measureE2e(p, kind, s, {
        probe: (api, worker) => {
          Object.assign(profiled, { api: api.pid, worker: worker.pid });
          return async () => {
            const own = process.cpuUsage();
            return {
              api: cpuMs(api.pid),
              worker: cpuMs(worker.pid),
              simulator: cpuMs(s.sim.child.pid),
              'driver (feeder, receiver)': (own.user + own.system) / 1000,
              'Postgres backends of its database': await backends.totalMs(),
            };
          };
        },
      }).finally(() => backends.stop());
      columns.push(`${p.name} ${kind.name} (${fmt(w.perSecond)}/s)`);
      perTask.push(
        Object.fromEntries(Object.keys(w.probe.end).map((k) => [k, (w.probe.end[k] - w.probe.start[k]) / Math.max(w.completed, 1)])),
      );
      // Node names a profile CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main one, the others tsx's loader.
      for (const [role, pid] of Object.entries(profiled)) {
        for (const file of fs.readdirSync(dir)) {
          const [, , , filePid, thread] = file.split('.');
          if (filePid !== String(pid)) continue;
          if (thread === '0') fs.renameSync(path.join(dir, file), path.join(dir, `${p.name}-${kind.name}-${role}.cpuprofile`));
          else fs.rmSync(path.join(dir, file));
        }
      }
    }
  }
  const rows = Object.keys(perTask[0] ?? {}).map((k) => [k, ...perTask.map((t) => t[k].toFixed(2))]);
  return `\n${textTable(['CPU ms per finished task', ...columns], rows)}\n\nCPU profiles (Chrome DevTools, speedscope): ${dir}`;
}
