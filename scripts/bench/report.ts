import { execFileSync } from 'node:child_process';
import os from 'node:os';
import type { Redis } from 'ioredis';
import { Client } from 'pg';
import { bench, ROOT } from './config';
import type { SlowEntry } from './infra';
import type { PipelineResult, ScaleRun } from './measure';
import type { CreateResult } from './phase-create';
import { fmt, markdownTable, mb, mean, textTable } from './stats';

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
  const pg = new Client({ connectionString: bench.serviceDbUrl });
  await pg.connect();
  const postgres = String((await pg.query('SHOW server_version')).rows[0].server_version);
  await pg.end();
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

export interface RunResults {
  machine: Machine;
  service: PipelineResult;
  bare: PipelineResult;
  /** Every create window, in order (the first is `create` of the pipeline). */
  createRounds: { service: CreateResult[]; bare: CreateResult[] };
  /** Tasks per second of every end-to-end window, in order (the first is `e2e` of the pipeline). */
  e2eRounds: { service: number[]; bare: number[] };
  scale: ScaleRun;
  slowlog: SlowEntry[];
}

const ratio = (s: number, b: number) => (Number.isFinite(s / b) ? `${(s / b).toFixed(2)}x` : 'n/a');

/** The comparison table: each service figure beside the bare pipeline's, and the ratio. */
export function comparisonRows(r: RunResults): string[][] {
  const { service: s, bare: b } = r;
  const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const [screate, bcreate] = [mean(r.createRounds.service.map((c) => c.perSecond)), mean(r.createRounds.bare.map((c) => c.perSecond))];
  const errors = (cs: CreateResult[]) => cs.reduce((a, c) => a + c.errors, 0);
  const createOk = screate / bcreate >= 0.7 && errors(r.createRounds.service) === 0;
  const [se2e, be2e] = [mean(r.e2eRounds.service), mean(r.e2eRounds.bare)];
  const e2eOk = se2e / be2e >= 0.5;
  const row = (name: string, sv: number, bv: number, unit: string, target = '') => [
    name,
    `${fmt(sv)}${unit}`,
    `${fmt(bv)}${unit}`,
    ratio(sv, bv),
    target,
  ];
  return [
    row(
      `create: accepted/s (50 connections, mean of ${r.createRounds.service.length} windows)`,
      screate,
      bcreate,
      '',
      `>= 0.7x, 0 errors: ${met(createOk)}`,
    ),
    row('create: p50 latency (first window)', s.create.p50Ms, b.create.p50Ms, ' ms'),
    row('create: p99 latency (first window)', s.create.p99Ms, b.create.p99Ms, ' ms'),
    row('create: errors (non-2xx, timeouts; all windows)', errors(r.createRounds.service), errors(r.createRounds.bare), ''),
    row(`end to end: tasks/s (mean of ${r.e2eRounds.service.length} windows)`, se2e, be2e, '', `>= 0.5x: ${met(e2eOk)}`),
    row('callback -> webhook: p50', s.latency.p50Ms, b.latency.p50Ms, ' ms'),
    row('callback -> webhook: p99', s.latency.p99Ms, b.latency.p99Ms, ' ms'),
    row('peak RSS: API process', s.peakRssKb.api / 1024, b.peakRssKb.api / 1024, ' MB'),
    row('peak RSS: worker process', s.peakRssKb.worker / 1024, b.peakRssKb.worker / 1024, ' MB'),
    row('Postgres commits per task', s.e2e.pgPerTask.commits, b.e2e.pgPerTask.commits, ''),
    row('Postgres rows written per task', rowsWritten(s), rowsWritten(b), ''),
  ];
}

/** Each create and end-to-end window's rates and ratio, in the order they ran. */
export function roundsLine(r: RunResults): string {
  const windows = (service: number[], bare: number[]) =>
    service.map((sv, i) => `${i + 1}: ${fmt(sv)} / ${fmt(bare[i])} = ${ratio(sv, bare[i])}`).join('; ');
  const perSecond = (cs: CreateResult[]) => cs.map((c) => c.perSecond);
  return [
    `Create windows (service / bare accepted/s; bare first in odd rounds, the service in even ones): ${windows(perSecond(r.createRounds.service), perSecond(r.createRounds.bare))}`,
    `End-to-end windows (service / bare tasks/s; bare first in odd rounds, the service in even ones): ${windows(r.e2eRounds.service, r.e2eRounds.bare)}`,
  ].join('\n');
}

const rowsWritten = (p: PipelineResult) => p.e2e.pgPerTask.inserted + p.e2e.pgPerTask.updated + p.e2e.pgPerTask.deleted;

const HEADER = ['measure', 'service', 'bare', 'service/bare', 'target'];

const cpuCell = (c?: { msPerTask: number; pctOfOneCore: number }) =>
  c ? `${c.msPerTask.toFixed(2)} ms (${c.pctOfOneCore.toFixed(0)}%)` : 'n/a';

const statusLatency = (p: PipelineResult) =>
  Object.entries(p.latency.byStatus)
    .map(([k, v]) => `${k} ${v.p50Ms}/${v.p99Ms}`)
    .join(', ');

export function printReport(r: RunResults): string {
  const { service: s, bare: b, scale } = r;
  const lines = [
    '',
    `kling-tracker benchmark, ${r.machine.date}, commit ${r.machine.commit}`,
    `${r.machine.cpus} CPUs (${r.machine.cpuModel}), ${r.machine.memoryGb} GB, Node ${r.machine.node}, Postgres ${r.machine.postgres}, Redis ${r.machine.redis}`,
    '',
    textTable(HEADER, comparisonRows(r)),
    roundsLine(r),
    '',
    'Steadiness and integrity (the first end-to-end window of each pipeline)',
    textTable(
      ['', 'service', 'bare'],
      [
        [
          'create: API CPU per create (% of one core)',
          `${fmt(s.create.apiCpuMsPerCreate, 2)} ms (${fmt(s.create.apiCpuPct)}%)`,
          `${fmt(b.create.apiCpuMsPerCreate, 2)} ms (${fmt(b.create.apiCpuPct)}%)`,
        ],
        [
          'create rate, first / last fifth (/s)',
          `${fmt(s.create.firstRate)} / ${fmt(s.create.lastRate)}`,
          `${fmt(b.create.firstRate)} / ${fmt(b.create.lastRate)}`,
        ],
        [
          'e2e slowest / fastest second',
          `${s.e2e.slowestSecond} / ${s.e2e.fastestSecond}`,
          `${b.e2e.slowestSecond} / ${b.e2e.fastestSecond}`,
        ],
        ['e2e min tasks outstanding in window', String(s.e2e.minOutstanding), String(b.e2e.minOutstanding)],
        ['e2e tasks created / unfinished after drain', `${s.e2e.created} / ${s.e2e.unfinished}`, `${b.e2e.created} / ${b.e2e.unfinished}`],
        ['e2e upstream tasks created', String(s.e2e.sim.created), String(b.e2e.sim.created)],
        [
          'e2e repeated webhooks (status / id)',
          `${s.e2e.repeats.sameStatus} / ${s.e2e.repeats.sameWebhookId}`,
          `${b.e2e.repeats.sameStatus} / -`,
        ],
        ['latency phase: callbacks without webhook', String(s.latency.missing), String(b.latency.missing)],
        ['RSS API: window start / end / later', s.rssKb.api.map(mb).join(' / '), b.rssKb.api.map(mb).join(' / ')],
        ['RSS worker: window start / end / later', s.rssKb.worker.map(mb).join(' / '), b.rssKb.worker.map(mb).join(' / ')],
        ['Redis keys after e2e / after latency', `${s.e2e.redisKeys} / ${s.redisKeysLater}`, `${b.e2e.redisKeys} / ${b.redisKeysLater}`],
      ],
    ),
    '',
    'CPU per finished task by process: ms of CPU per task (% of one core), e2e window and latency phase',
    textTable(
      ['process', 'service e2e', 'bare e2e', `service ${bench.latencyRate}/s`, `bare ${bench.latencyRate}/s`],
      Object.keys(s.e2e.cpu).map((k) => [
        k,
        cpuCell(s.e2e.cpu[k]),
        cpuCell(b.e2e.cpu[k]),
        cpuCell(s.latency.cpu[k]),
        cpuCell(b.latency.cpu[k]),
      ]),
    ),
    `Service submit jobs by outcome (last completed ones kept by BullMQ): ${JSON.stringify(s.e2e.submitOutcomes ?? {})}`,
    `Callback -> webhook by status (p50/p99 ms): service ${statusLatency(s)}; bare ${statusLatency(b)}`,
    '',
    `Rows kept per task (service): ${Object.entries(s.rowsPerTask ?? {})
      .map(([t, n]) => `${t} ${n.toFixed(2)}`)
      .join(', ')}`,
    '',
    `Scale-out (2 API + 2 worker processes): ${scale.ok ? 'no double processing' : `FAILED: ${scale.failures.join('; ')}`}`,
    `  ${scale.tasks} tasks, ${scale.upstreamCreated} upstream tasks (${scale.distinctExternalIds} distinct), submit attempts ${scale.submitAttempts}, ` +
      `states ${JSON.stringify(scale.byState)}, per worker ${JSON.stringify(scale.perWorker)}, ` +
      `webhooks processing/succeed ${scale.processingWebhooks}/${scale.succeedWebhooks}, repeats ${JSON.stringify(scale.repeats)}, ` +
      `${fmt(scale.perSecond)} tasks/s including the creates`,
    `  connections (Redis/Postgres): ${Object.entries(scale.connections)
      .map(([n, c]) => `${n} ${c.redis}/${c.postgres}`)
      .join(', ')}`,
    `  peak RSS: ${Object.entries(scale.peakRssKb)
      .map(([n, kb]) => `${n} ${mb(kb)}`)
      .join(', ')}`,
    '',
    'Postgres time by statement during the service e2e window (pg_stat_activity samples; share of samples, wait):',
    ...s.e2e.pgTop.map((t) => `  ${t.samples.toString().padStart(5)}  ${t.wait.padEnd(28)} ${t.query}`),
    `  (average active connections: service ${fmt(s.e2e.pgActiveAvg, 2)}, bare ${fmt(b.e2e.pgActiveAvg, 2)})`,
    '',
    `Redis SLOWLOG entries (> 10 ms) on our prefixes: ${r.slowlog.length ? r.slowlog.map((e) => `${e.command} ${e.micros} us`).join('; ') : 'none'}`,
    '',
    'Markdown:',
    '',
    markdownTable(HEADER, comparisonRows(r)),
    '',
    roundsLine(r),
  ];
  return lines.join('\n');
}
