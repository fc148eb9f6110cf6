import { execFileSync } from 'node:child_process';
import os from 'node:os';
import type { Redis } from 'ioredis';
import { bench, ROOT } from './config';
import { withPg } from '../lib/local-services';
import type { PgCounters } from './infra';
import type { CreateWindow, E2eWindow } from './measure';
import { overloadIntegrityRows, overloadLines, overloadRows, type OverloadResults } from './report-overload';
import { compareRow as row, fmt, markdownTable, mb, mean, met, ratio, sum, textTable } from './stats';

export interface Machine {
  date: string;
  cpus: number;
  cpuModel: string;
  memoryGb: number;
  node: string;
  postgres: string;
  redis: string;
  commit: string;
}

export async function describeMachine(redis: Redis): Promise<Machine> {
  const postgres = await withPg(bench.serviceDbUrl, async (c) => String((await c.query('SHOW server_version')).rows[0].server_version));
  const info = await redis.info('server');
  const git = (args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
  const dirty = git(['status', '--porcelain', '--untracked-files=no']) ? ' (with uncommitted changes)' : '';
  return {
    date: new Date().toISOString(),
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    postgres,
    redis: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown',
    commit: `${git(['rev-parse', '--short', 'HEAD'])}${dirty}`,
  };
}

/** Every window of each pipeline, in the order they ran. */
export interface Windows<T> {
  service: T[];
  bare: T[];
}

export interface RunResults {
  machine: Machine;
  /** What each pipeline did with the outputs (describeOutputs). */
  outputs?: string;
  /** The service processes' LOG_LEVEL (BENCH_LOG_LEVEL): a run at `info` logs every request, and is not comparable with one at `warn`. */
  logLevel?: string;
  /** The kinds measured, in order; the first one's first end-to-end windows carry the latency phase. */
  kinds: string[];
  /** A kind's windows are empty when its phase did not run (BENCH_PHASES). */
  create: Record<string, Windows<CreateWindow>>;
  e2e: Record<string, Windows<E2eWindow>>;
  overload?: OverloadResults;
}

const rate = (ws: { perSecond: number }[]) => mean(ws.map((w) => w.perSecond));
const errors = (ws: CreateWindow[]) => sum(ws.map((w) => w.errors));
const rowsWritten = (pg: PgCounters) => pg.inserted + pg.updated + pg.deleted;
const sides = ['service', 'bare'] as const;
const ran = (w: Windows<unknown> | undefined) => (w?.service.length ?? 0) > 0;

const pick = <T, K extends keyof T>(xs: T[], k: K) => xs.map((x) => x[k] as number);

function createRows(kind: string, c: Windows<CreateWindow>): string[][] {
  const [create, cErrors] = [sides.map((p) => rate(c[p])), sides.map((p) => errors(c[p]))];
  const c0 = sides.map((p) => c[p][0]);
  const createTarget = `>= 0.7x, 0 errors: ${met(create[0] / create[1] >= 0.7 && cErrors[0] === 0)}`;
  return [
    row(
      `${kind} create: accepted/s (${bench.createConnections} connections, mean of ${c.service.length} windows)`,
      create,
      '',
      createTarget,
    ),
    row(`${kind} create: p50 latency (first window)`, pick(c0, 'p50Ms'), ' ms'),
    row(`${kind} create: p99 latency (first window)`, pick(c0, 'p99Ms'), ' ms'),
    row(`${kind} create: errors (non-2xx, timeouts; all windows)`, cErrors),
  ];
}

function e2eRows(kind: string, e: Windows<E2eWindow>): string[][] {
  const [e2e, pg0] = [sides.map((p) => rate(e[p])), sides.map((p) => e[p][0].pgPerTask)];
  return [
    row(`${kind} end to end: tasks/s (mean of ${e.service.length} windows)`, e2e, '', `>= 0.5x: ${met(e2e[0] / e2e[1] >= 0.5)}`),
    row(`${kind} end to end: Postgres commits per task (first window)`, pick(pg0, 'commits')),
    row(`${kind} end to end: Postgres rows written per task (first window)`, pg0.map(rowsWritten)),
  ];
}

/** The comparison table: each service figure beside the bare pipeline's, the ratio, and the verdicts on the targets. */
export function comparisonRows(r: RunResults): string[][] {
  const rows = r.kinds.flatMap((kind) => [
    ...(ran(r.create[kind]) ? createRows(kind, r.create[kind]) : []),
    ...(ran(r.e2e[kind]) ? e2eRows(kind, r.e2e[kind]) : []),
  ]);
  const latency = sides.map((p) => r.e2e[r.kinds[0]][p][0]?.latency ?? { p50Ms: NaN, p99Ms: NaN });
  const peakKb = (k: 'api' | 'worker') =>
    sides.map((p) => [
      ...Object.values(r.e2e).flatMap((w) => w[p].map((x) => x.peakRssKb[k])),
      ...(k === 'api' ? Object.values(r.create).flatMap((w) => w[p].map((x) => x.apiPeakRssKb)) : []),
    ]);
  const peakRow = (name: string, k: 'api' | 'worker') =>
    peakKb(k)[0].length
      ? [
          row(
            name,
            peakKb(k).map((kb) => Math.max(...kb) / 1024),
            ' MB',
          ),
        ]
      : [];
  const at = `${r.kinds[0]}, ${bench.latencyRate} tasks/s`;
  return [
    ...rows,
    ...(ran(r.e2e[r.kinds[0]])
      ? [
          row(`callback -> webhook: p50 (${at})`, pick(latency, 'p50Ms'), ' ms'),
          row(`callback -> webhook: p99 (${at})`, pick(latency, 'p99Ms'), ' ms'),
        ]
      : []),
    ...peakRow('peak RSS: API process (create and end-to-end windows)', 'api'),
    ...peakRow('peak RSS: worker process (end-to-end windows)', 'worker'),
    ...(r.overload ? overloadRows(r.overload) : []),
  ];
}

/** Each create and end-to-end window's rates and ratio, in the order they ran. */
function windowLines(r: RunResults): string[] {
  const line = (what: string, w: Windows<{ perSecond: number }>) =>
    `${what} (service / bare; bare first in odd rounds): ` +
    w.service
      .map((s, i) => `${i + 1}: ${fmt(s.perSecond)} / ${fmt(w.bare[i].perSecond)} = ${ratio(s.perSecond, w.bare[i].perSecond)}`)
      .join('; ');
  return [
    ...r.kinds.flatMap((k) => [
      ...(ran(r.create[k]) ? [line(`${k} create windows, accepted/s`, r.create[k])] : []),
      ...(ran(r.e2e[k]) ? [line(`${k} end-to-end windows, tasks/s`, r.e2e[k])] : []),
    ]),
    ...(r.overload ? overloadLines(r.overload) : []),
  ];
}

/** What a ratio cannot show: every task finished once, a backlog that never ran dry, bounded memory and keys. */
function integrityRows(r: RunResults): string[][] {
  const cells = (name: string, f: (p: (typeof sides)[number]) => string) => [name, ...sides.map(f)];
  const rows = r.kinds
    .filter((kind) => ran(r.e2e[kind]))
    .flatMap((kind) => {
      const total = (p: (typeof sides)[number], f: (w: E2eWindow) => number) => sum(r.e2e[kind][p].map(f));
      return [
        cells(`${kind} e2e: tasks created / unfinished after drain / upstream tasks (all windows)`, (p) =>
          [total(p, (w) => w.created), total(p, (w) => w.unfinished), total(p, (w) => w.upstreamCreated)].join(' / '),
        ),
        cells(
          `${kind} e2e: repeated webhooks, same status / same id (all windows)`,
          (p) => `${total(p, (w) => w.repeats.sameStatus)} / ${total(p, (w) => w.repeats.sameWebhookId)}`,
        ),
        cells(`${kind} e2e: fewest tasks outstanding in a window`, (p) => String(Math.min(...r.e2e[kind][p].map((w) => w.minOutstanding)))),
      ];
    });
  const first = (p: (typeof sides)[number]) => r.e2e[r.kinds[0]][p][0];
  const rss = (k: 'api' | 'worker') => (p: (typeof sides)[number]) =>
    [first(p).probe.start[k], first(p).probe.end[k], first(p).latency?.rssKb[k] ?? NaN].map(mb).join(' / ');
  const firstRows = () => [
    cells('latency phase: callbacks without webhook', (p) => String(first(p).latency?.missing)),
    cells(`RSS API: ${r.kinds[0]} window start / end / after latency`, rss('api')),
    cells(`RSS worker: ${r.kinds[0]} window start / end / after latency`, rss('worker')),
    cells('Redis keys after e2e / after latency', (p) => `${first(p).redisKeys} / ${first(p).latency?.redisKeys}`),
  ];
  return [...rows, ...(ran(r.e2e[r.kinds[0]]) ? firstRows() : []), ...(r.overload ? overloadIntegrityRows(r.overload) : [])];
}

const HEADER = ['measure', 'service', 'bare', 'service/bare', 'target'];

export function printReport(r: RunResults): string {
  const rowsKept = (kind: string) =>
    ran(r.e2e[kind]) &&
    `${kind} ${Object.entries(r.e2e[kind].service[0].rowsPerTask ?? {})
      .map(([t, n]) => `${t} ${n.toFixed(2)}`)
      .join(', ')}`;
  const { machine: m } = r;
  return [
    '',
    `kling-tracker benchmark, ${m.date}, commit ${m.commit}`,
    `${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGb} GB, Node ${m.node}, Postgres ${m.postgres}, Redis ${m.redis}`,
    ...(r.outputs ? [r.outputs] : []),
    ...(r.logLevel ? [`logs: the service's processes at LOG_LEVEL=${r.logLevel} (BENCH_LOG_LEVEL)`] : []),
    '',
    textTable(HEADER, comparisonRows(r)),
    ...windowLines(r),
    '',
    textTable(['integrity and steadiness', 'service', 'bare'], integrityRows(r)),
    `Rows kept per task (service, first window): ${r.kinds.map(rowsKept).filter(Boolean).join('; ') || 'n/a'}`,
    '',
    'Markdown:',
    '',
    markdownTable(HEADER, comparisonRows(r)),
    '',
    ...windowLines(r),
  ].join('\n');
}
