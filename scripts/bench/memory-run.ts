/**
 * `npm run bench -- --memory`: the closed-loop end-to-end load of the service held for
 * `BENCH_MEMORY_S` (10 minutes by default), with the resident set (VmRSS) of the API, the worker
 * and the simulator sampled every `BENCH_MEMORY_SAMPLE_S` from the end of the warm-up; a process
 * ending more than 10% above its start is flagged. Before each sample the simulator forgets the
 * tasks that ended more than `FORGET_AFTER_MS` before: it would otherwise keep every one (and look
 * through all of them at every create), slowing down and growing with the run, which is not what
 * is measured.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bench, memory } from './config';
import { closedLoopFeeder, drain, startPhase, type Shared } from './feeder';
import { printMemoryReport, type MemoryResults, type MemorySample } from './memory-report';
import type { Pipeline } from './pipelines';
import { sleep } from './procs';
import type { Machine } from './report';
import { progress } from './stats';

/** Far longer than any task of the run takes to end and be told (zero-latency upstream). */
const FORGET_AFTER_MS = 10_000;

export async function runMemory(p: Pipeline, s: Shared, machine: Machine): Promise<string> {
  const kind = bench.kinds[0];
  await p.reset();
  const api = await p.startApi();
  const worker = await p.startWorker(api);
  try {
    const client = await startPhase(p, kind, api, s);
    const feeder = closedLoopFeeder(client, () => s.receiver.succeeded());
    progress(`${p.name} ${kind.name}: steady load, backlog ${bench.e2eBacklog}, warm-up ${bench.e2eWarmupS}s, then ${memory.durationS}s`);
    await sleep(bench.e2eWarmupS * 1000);
    const procs = { api: api.child, worker, simulator: s.sim.child };
    const start = Date.now();
    const done0 = s.receiver.succeeded();
    const samples: MemorySample[] = [];
    const take = async () => {
      await s.sim.forgetEnded(Date.now() - FORGET_AFTER_MS);
      const rssKb = Object.fromEntries(Object.entries(procs).map(([name, c]) => [name, c.memoryKb('VmRSS')]));
      samples.push({ atS: (Date.now() - start) / 1000, completed: s.receiver.succeeded() - done0, rssKb });
    };
    await take();
    for (let i = 1; i * memory.sampleS <= memory.durationS; i++) {
      await sleep(start + i * memory.sampleS * 1000 - Date.now());
      await take();
      const x = samples[samples.length - 1];
      progress(
        `${fmtS(x.atS)}: ${x.completed} tasks; RSS ${Object.entries(x.rssKb)
          .map(([n, kb]) => `${n} ${(kb / 1024).toFixed(0)} MB`)
          .join(', ')}`,
      );
    }
    await feeder.stop();
    client.close();
    const unfinished = await drain(feeder.ids, s.receiver);
    const results: MemoryResults = { machine, kind: kind.name, samples, created: feeder.ids.length, unfinished };
    const file = path.join(os.tmpdir(), `kling-tracker-bench-memory-${machine.date.replace(/[:.]/g, '-')}.json`);
    fs.writeFileSync(file, JSON.stringify(results, null, 2));
    return `${printMemoryReport(results)}\n\nRaw results: ${file}`;
  } finally {
    await p.stop([api.child, worker]);
    await p.reset();
  }
}

const fmtS = (s: number) => `${s.toFixed(0)}s`;
