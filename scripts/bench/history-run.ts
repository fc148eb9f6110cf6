/**
 * `npm run bench -- --history [N]`: does a task cost the same after months of use? The service is
 * measured on a database holding N finished tasks (2 million by default) of 100 tenants, and on
 * the benchmark's nearly empty one, in the same run, alternating: create, the reads (GET by id, by
 * external id, list pages 1 and 1000) and the closed-loop end to end, each judged at 0.8x of its
 * figure on the empty database; then the query plans of the hot statements with history.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bench, history } from './config';
import type { Shared } from './feeder';
import { pipelineOn, prepareEmptyDb, sampleTasks, type MeasuredDb } from './history-db';
import { capturePlans } from './history-plans';
import { measureReads } from './history-reads';
import { printHistoryReport, type DbWindows, type HistoryResults } from './history-report';
import { seedHistoryDb } from './history-seed';
import { withPg } from '../lib/local-services';
import { measureCreate, measureE2e } from './measure';
import type { Pipeline, PipelineOptions } from './pipelines';
import type { Machine } from './report';
import { progress } from './stats';

/** The number after `--history` (the default when none), or undefined without the flag. */
export function historyTasks(argv: string[]): number | undefined {
  const at = argv.indexOf('--history');
  if (at < 0) return undefined;
  const n = Number(argv[at + 1]);
  return Number.isInteger(n) && n > 0 ? n : history.defaultTasks;
}

const windows = <T>(): DbWindows<T> => ({ empty: [], history: [] });

const tenantTasks = (db: MeasuredDb, kindId: string) =>
  withPg(db.url, async (c) =>
    Number((await c.query('SELECT count(*) AS n FROM tasks WHERE tenant_id = $1 AND kind = $2', [db.tenantId, kindId])).rows[0].n),
  );

/**
 * Each round measures both databases phase by phase, the empty one first in odd rounds and the
 * seeded one first in even ones, so that a drift of the machine favours neither.
 */
async function measureBoth(
  pipes: Record<keyof DbWindows<unknown>, Pipeline>,
  samples: Record<string, { ids: string[]; externalIds: string[] }>,
  s: Shared,
) {
  const kind = bench.kinds[0];
  const r = { create: windows<Awaited<ReturnType<typeof measureCreate>>>(), reads: windows<Awaited<ReturnType<typeof measureReads>>>() };
  const e2e = windows<Awaited<ReturnType<typeof measureE2e>>>();
  for (let round = 1; round <= history.rounds; round++) {
    const order = round % 2 === 1 ? (['empty', 'history'] as const) : (['history', 'empty'] as const);
    progress(`history round ${round}: ${order.join(' first, then ')}`);
    for (const d of order) r.create[d].push(await measureCreate(pipes[d], kind, s));
    for (const d of order) r.reads[d].push(await measureReads(pipes[d], kind, samples[d]));
    for (const d of order) e2e[d].push(await measureE2e(pipes[d], kind, s));
  }
  return { ...r, e2e };
}

export async function runHistory(tasks: number, apiKey: string, s: Shared, o: PipelineOptions, machine: Machine): Promise<string> {
  const kind = bench.kinds[0];
  const seeded = await seedHistoryDb(history.dbUrl, { tasks, tenants: history.tenants, days: history.days }, history.reseed);
  const dbs: Record<keyof DbWindows<unknown>, MeasuredDb> = {
    history: { name: 'history', url: history.dbUrl, tenantId: seeded.tenantId, apiKey: seeded.apiKey, mark: new Date(seeded.record.mark) },
    empty: await prepareEmptyDb(apiKey, history.baselineTasks),
  };
  const pipes = { empty: pipelineOn(dbs.empty, o), history: pipelineOn(dbs.history, o) };
  try {
    // Whatever an interrupted earlier run left goes first.
    await pipes.history.reset();
    const samples = {
      empty: await sampleTasks(dbs.empty, kind, history.readSample),
      history: await sampleTasks(dbs.history, kind, history.readSample),
    };
    const measured = await measureBoth(pipes, samples, s);
    progress('history: query plans of the hot statements');
    const plans = await capturePlans(dbs.history, kind);
    const results: HistoryResults = {
      machine,
      kind: kind.name,
      seed: { ...seeded.record, written: seeded.written },
      baselineTasks: await tenantTasks(dbs.empty, kind.id),
      tenantTasks: await tenantTasks(dbs.history, kind.id),
      ...measured,
      plans,
    };
    const file = path.join(os.tmpdir(), `kling-tracker-bench-history-${machine.date.replace(/[:.]/g, '-')}.json`);
    fs.writeFileSync(file, JSON.stringify(results, null, 2));
    return `${printHistoryReport(results)}\n\nRaw results: ${file}`;
  } finally {
    await pipes.history.reset();
  }
}
