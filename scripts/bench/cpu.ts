import fs from 'node:fs';

/**
 * CPU time per process from /proc (Linux), to say which process the time of a task goes to.
 * On a 2-core machine shared by the pipeline, its upstream, its client and its databases, this is
 * steadier than wall-clock rates: it does not depend on who else was scheduled.
 */

/** USER_HZ: /proc reports CPU time in these ticks (100 on every mainstream Linux). */
const TICKS_PER_SECOND = 100;

/** utime + stime of one process, in ms (0 once it is gone). */
export function processCpuMs(pid: number): number {
  try {
    return ticksToMs(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return 0;
  }
}

// The command name is in parentheses and may contain spaces: fields are counted after the last ')'.
function ticksToMs(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}

/**
 * CPU of a changing set of processes (the Postgres backends of one database: pools open and close
 * connections). Summing the live ones at two moments would lose the CPU of those that exited in
 * between, even go negative; this accumulates each process's growth since it was last seen.
 */
export interface CpuTracker {
  /** Accumulated CPU ms since the tracker started (refreshed now). */
  totalMs(): Promise<number>;
  stop(): void;
}

export function trackPids(listPids: () => Promise<number[]>, everyMs = 500): CpuTracker {
  const last = new Map<number, number>();
  let total = 0;
  let first = true;
  const tick = async () => {
    const pids = await listPids().catch(() => [...last.keys()]);
    for (const pid of pids) {
      const now = processCpuMs(pid);
      // Processes present at the start count from then; later ones from their birth.
      const before = last.get(pid) ?? (first ? now : 0);
      total += Math.max(0, now - before);
      last.set(pid, now);
    }
    first = false;
  };
  const started = tick();
  const timer = setInterval(() => void tick(), everyMs);
  return {
    async totalMs() {
      await started;
      await tick();
      return total;
    },
    stop: () => clearInterval(timer),
  };
}

/** Sum over every process with this command name, in ms (for long-lived ones such as redis-server). */
export function commandCpuMs(comm: string): number {
  let total = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) === comm) total += ticksToMs(stat);
    } catch {
      /* the process ended meanwhile */
    }
  }
  return total;
}

export const ownCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

export type CpuReading = Record<string, number>;
export type CpuReader = () => Promise<CpuReading>;

/** Per process: CPU ms per task between two readings, and the share of the machine it used. */
export interface CpuShare {
  msPerTask: number;
  /** Percent of all cores over the interval (200% would be both cores of a 2-core machine). */
  pctOfOneCore: number;
}

export function cpuPerTask(before: CpuReading, after: CpuReading, tasks: number, elapsedMs: number): Record<string, CpuShare> {
  return Object.fromEntries(
    Object.keys(after).map((k) => {
      const used = after[k] - (before[k] ?? 0);
      return [k, { msPerTask: used / Math.max(tasks, 1), pctOfOneCore: (100 * used) / elapsedMs }];
    }),
  );
}
