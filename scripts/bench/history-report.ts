import type { ReadName, ReadResult } from './history-reads';
import { READS } from './history-reads';
import type { Plans } from './history-plans';
import { formatPlans } from './history-plans';
import type { CreateWindow, E2eWindow } from './measure';
import type { Machine } from './report';
import { fmt, markdownTable, mean, textTable } from './stats';

/** Each figure with history must stay at or above this share of the same figure on the empty database. */
export const HISTORY_TARGET = 0.8;

/** Every window on each database, in the order they ran. */
export interface DbWindows<T> {
  empty: T[];
  history: T[];
}

export interface HistoryResults {
  machine: Machine;
  /** The kind measured (its create path, its reads, its end to end). */
  kind: string;
  seed: { tasks: number; tenants: number; days: number; seconds: number; written: boolean; mark: string; rows: Record<string, number> };
  /** Tasks of the benchmark's tenant, of the kind measured, on the empty database (what its reads find). */
  baselineTasks: number;
  /** Tasks of the benchmark's tenant, of the kind measured, in the seeded history. */
  tenantTasks: number;
  create: DbWindows<CreateWindow>;
  reads: DbWindows<Record<ReadName, ReadResult>>;
  e2e: DbWindows<E2eWindow>;
  plans: Plans[];
}

const dbs = ['empty', 'history'] as const;
const ratio = (h: number, e: number) => (Number.isFinite(h / e) ? `${(h / e).toFixed(2)}x` : 'n/a');
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** A measured rate on both databases (mean of the windows), the ratio, and the verdict (with zero errors, where errors count). */
function judged(name: string, rates: DbWindows<number>, errors?: DbWindows<number>): string[] {
  const [e, h] = dbs.map((d) => mean(rates[d]));
  const faults = errors ? sum(errors.history) + sum(errors.empty) : 0;
  const verdict = h / e >= HISTORY_TARGET && faults === 0 ? 'met' : 'MISSED';
  return [name, fmt(e), fmt(h), ratio(h, e), `>= ${HISTORY_TARGET}x${errors ? ', 0 errors' : ''}: ${verdict}`];
}

const each = <T, V>(w: DbWindows<T>, f: (x: T) => V): DbWindows<V> => ({ empty: w.empty.map(f), history: w.history.map(f) });

/** The comparison table: each figure on the empty database beside the same with history, the ratio and the verdict. */
export function historyRows(r: HistoryResults): string[][] {
  const n = (w: DbWindows<unknown>) => `mean of ${w.history.length} windows`;
  const reads = READS.flatMap((name) => {
    const of = each(r.reads, (w) => w[name]);
    const first = (d: (typeof dbs)[number]) => of[d][0];
    return [
      judged(
        `${name}: answers/s (${n(of)})`,
        each(of, (w) => w.perSecond),
        each(of, (w) => w.errors),
      ),
      [`${name}: p99 latency (first window)`, ...dbs.map((d) => `${fmt(first(d)?.p99Ms ?? NaN)} ms`), '', ''],
      [`${name}: tasks per answer`, ...dbs.map((d) => String(first(d)?.items)), '', ''],
    ];
  });
  const pg = (k: 'commits' | 'rows') =>
    dbs.map((d) => {
      const c = r.e2e[d][0]?.pgPerTask;
      return c ? fmt(k === 'commits' ? c.commits : c.inserted + c.updated + c.deleted) : 'n/a';
    });
  return [
    judged(
      `create: accepted/s (${n(r.create)})`,
      each(r.create, (w) => w.perSecond),
      each(r.create, (w) => w.errors),
    ),
    ...reads,
    judged(
      `end to end: tasks/s (${n(r.e2e)})`,
      each(r.e2e, (w) => w.perSecond),
    ),
    ['end to end: Postgres commits per task (first window)', ...pg('commits'), '', ''],
    ['end to end: Postgres rows written per task (first window)', ...pg('rows'), '', ''],
  ];
}

const HEADER = ['measure', 'empty', 'history', 'history/empty', 'target'];

function windowLines(r: HistoryResults): string[] {
  const line = (what: string, w: DbWindows<number>) =>
    `${what} (empty / history): ` +
    w.empty.map((e, i) => `${i + 1}: ${fmt(e)} / ${fmt(w.history[i])} = ${ratio(w.history[i], e)}`).join('; ');
  return [
    line(
      'create windows',
      each(r.create, (w) => w.perSecond),
    ),
    ...READS.map((name) =>
      line(
        `${name} windows`,
        each(r.reads, (w) => w[name].perSecond),
      ),
    ),
    line(
      'end-to-end windows',
      each(r.e2e, (w) => w.perSecond),
    ),
  ];
}

export function printHistoryReport(r: HistoryResults): string {
  const m = r.machine;
  const s = r.seed;
  const rows = Object.entries(s.rows)
    .map(([t, x]) => `${t} ${x}`)
    .join(', ');
  return [
    '',
    `kling-tracker benchmark with history, ${m.date}, commit ${m.commit}, kind ${r.kind}`,
    `${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGb} GB, Node ${m.node}, Postgres ${m.postgres}, Redis ${m.redis}`,
    `history: ${s.tasks} finished tasks of ${s.tenants} tenants over ${s.days} days (${rows}); ` +
      `${s.written ? `seeded in ${s.seconds} s by this run` : `seeded in ${s.seconds} s on ${s.mark}, kept`}; ` +
      `the benchmark's tenant has ${r.tenantTasks} of them of this kind, ${r.baselineTasks} on the empty database`,
    '',
    textTable(HEADER, historyRows(r)),
    ...windowLines(r),
    '',
    'Markdown:',
    '',
    markdownTable(HEADER, historyRows(r)),
    '',
    `Query plans with history (EXPLAIN ANALYZE, BUFFERS through auto_explain):`,
    '',
    formatPlans(r.plans),
  ].join('\n');
}
