/**
 * The upstream of both pipelines: the built-in Kling simulator with zero latency, in a process of
 * its own (so its CPU is not charged to the driver's measurements), driven over the IPC channel.
 */
import { createKlingSimulator } from '../../src/simulator/kling-simulator';
import type { CallbackStats, SentCallbackTime, SimRequest, SimResponse } from './sim-protocol';
import { percentile } from './stats';

const apiKey = process.env.SIM_API_KEY;
if (!apiKey || !process.send) {
  console.error('sim-host: run by the benchmark driver (needs SIM_API_KEY and an IPC channel)');
  process.exit(2);
}

const sim = createKlingSimulator({ apiKey, processingAfterMs: 0, finishAfterMs: 0 });
const fileBaseUrl = process.env.SIM_FILE_BASE_URL;

/** Upstream tasks created since the last reset, by kind (which path each pipeline used). */
function createdByKind(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const task of sim.tasks.values()) counts[task.kind] = (counts[task.kind] ?? 0) + 1;
  return counts;
}

/** Send time of every callback, keyed by our task id (the upstream's external_task_id) and status. */
const callbackTimes = (): SentCallbackTime[] =>
  sim.callbacks.map((c) => ({ taskId: sim.tasks.get(c.task_id)?.external_task_id ?? c.task_id, status: c.status, at: c.at }));

function callbackStats(): CallbackStats {
  const stats = { sent: sim.callbacks.length, ok: 0, timeouts: 0, connectionErrors: 0, non2xx: 0 };
  for (const c of sim.callbacks) {
    if (c.ok) stats.ok++;
    else if (c.httpStatus !== undefined) stats.non2xx++;
    else if (c.timedOut) stats.timeouts++;
    else stats.connectionErrors++;
  }
  const durations = sim.callbacks.map((c) => c.durationMs);
  return { ...stats, p50Ms: percentile(durations, 50), p99Ms: percentile(durations, 99) };
}

const answers: Record<Exclude<SimRequest['op'], 'forget'>, () => unknown> = {
  // Reset between phases: the simulator keeps every task and request in memory.
  reset: () => sim.reset(),
  created: createdByKind,
  callbacks: callbackTimes,
  settle: () => sim.settle(),
  callbackStats,
};

process.on('message', ({ id, op, before }: SimRequest) => {
  const value = op === 'forget' ? sim.forgetEnded(before ?? 0) : answers[op]();
  void Promise.resolve(value).then((v) => process.send!({ id, value: v } satisfies SimResponse));
});

// The driver went away (crash included): nothing to serve any more.
process.on('disconnect', () => process.exit(0));

void sim.listen(0, '127.0.0.1').then((url) => {
  if (fileBaseUrl) sim.fileBaseUrl = fileBaseUrl;
  process.send!({ id: 0, value: url } satisfies SimResponse);
});
