import type { Machine } from './report';
import { fmt, markdownTable, percentile, textTable } from './stats';

/**
 * A process whose resident set grows by more than this share is flagged. Growth is judged on the
 * median of the first and of the last third of the samples: a heap waiting for its next collection
 * swings by tens of MB between two samples (and one release can dip it once), a leak moves them all.
 */
export const MEMORY_GROWTH_LIMIT = 0.1;

export interface MemorySample {
  /** Seconds since the start of the measured load (after the warm-up). */
  atS: number;
  /** Tasks finished (their `succeed` webhook received) since the start. */
  completed: number;
  /** VmRSS of each process, kB. */
  rssKb: Record<string, number>;
}

export interface MemoryResults {
  machine: Machine;
  kind: string;
  samples: MemorySample[];
  created: number;
  /** Tasks not finished when the drain timed out (the target is zero). */
  unfinished: number;
}

const mbOf = (kb: number) => `${fmt(kb / 1024)} MB`;
const median = (xs: number[]) => percentile(xs, 50);

/** Per process: resident set at the start and the end, lowest and highest, the medians of the first and last thirds, their growth and its verdict. */
export function memoryRows(r: MemoryResults): string[][] {
  const s = r.samples;
  const third = Math.max(1, Math.floor(s.length / 3));
  return Object.keys(s[0]?.rssKb ?? {}).map((proc) => {
    const all = s.map((x) => x.rssKb[proc]);
    const [early, late] = [median(all.slice(0, third)), median(all.slice(-third))];
    const growth = (late - early) / early;
    const verdict = growth > MEMORY_GROWTH_LIMIT ? `GROWS (over ${MEMORY_GROWTH_LIMIT * 100}%)` : 'steady';
    return [
      proc,
      mbOf(all[0]),
      mbOf(all[all.length - 1]),
      mbOf(Math.min(...all)),
      mbOf(Math.max(...all)),
      `${mbOf(early)} -> ${mbOf(late)}`,
      `${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(1)}%`,
      verdict,
    ];
  });
}

const HEADER = ['process', 'start', 'end', 'lowest', 'highest', 'median: first third -> last third', 'growth', 'verdict'];

export function printMemoryReport(r: MemoryResults): string {
  const m = r.machine;
  const s = r.samples;
  const last = s[s.length - 1];
  const rates = s.slice(1).map((x, i) => fmt((x.completed - s[i].completed) / (x.atS - s[i].atS)));
  const series = Object.keys(s[0]?.rssKb ?? {}).map((p) => `${p} (MB): ${s.map((x) => fmt(x.rssKb[p] / 1024)).join(' ')}`);
  return [
    '',
    `kling-tracker memory under a steady load, ${m.date}, commit ${m.commit}, kind ${r.kind}`,
    `${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGb} GB, Node ${m.node}, Postgres ${m.postgres}, Redis ${m.redis}`,
    `${fmt(last.atS)} s of closed-loop end to end after the warm-up: ${last.completed} tasks finished ` +
      `(${fmt(last.completed / last.atS)}/s), ${r.created} created, ${r.unfinished} unfinished after the drain`,
    '',
    textTable(HEADER, memoryRows(r)),
    '',
    `tasks/s between samples: ${rates.join(' ')}`,
    ...series,
    '',
    'Markdown:',
    '',
    markdownTable(HEADER, memoryRows(r)),
  ].join('\n');
}
