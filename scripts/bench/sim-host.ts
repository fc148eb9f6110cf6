/**
 * The upstream of both pipelines: the built-in Kling simulator with zero latency, in a process of
 * its own (so its CPU is not charged to the driver's measurements), driven over the IPC channel.
 */
import { createKlingSimulator } from '../../src/simulator/kling-simulator';
import type { SimRequest, SimResponse, SimStats, SentCallbackTime } from './sim-protocol';

const apiKey = process.env.SIM_API_KEY;
if (!apiKey || !process.send) {
  console.error('sim-host: run by the benchmark driver (needs SIM_API_KEY and an IPC channel)');
  process.exit(2);
}

const sim = createKlingSimulator({ apiKey, processingAfterMs: 0, finishAfterMs: 0 });

function stats(): SimStats {
  const externalIds = new Set<string>();
  // Which API each upstream task calls back tells which worker process submitted it.
  const byCallbackOrigin: Record<string, number> = {};
  for (const task of sim.tasks.values()) {
    if (task.external_task_id) externalIds.add(task.external_task_id);
    const origin = task.callback_url ? new URL(task.callback_url).origin : 'none';
    byCallbackOrigin[origin] = (byCallbackOrigin[origin] ?? 0) + 1;
  }
  const failed = sim.callbacks.filter((c) => !c.ok).length;
  return {
    created: sim.createdCount(),
    distinctExternalIds: externalIds.size,
    callbacksSent: sim.callbacks.length,
    callbacksFailed: failed,
    byCallbackOrigin,
  };
}

/** Send time of every callback, keyed by our task id (the upstream's external_task_id) and status. */
function callbackTimes(): SentCallbackTime[] {
  return sim.callbacks.map((c) => ({ taskId: sim.tasks.get(c.task_id)?.external_task_id ?? c.task_id, status: c.status, at: c.at }));
}

process.on('message', (msg: SimRequest) => {
  const answer = (r: SimResponse) => process.send!(r);
  if (msg.op === 'reset') {
    // Between phases: the simulator keeps every task and request in memory.
    sim.reset();
    answer({ id: msg.id, ok: true });
  } else if (msg.op === 'stats') answer({ id: msg.id, stats: stats() });
  else if (msg.op === 'callbacks') answer({ id: msg.id, callbacks: callbackTimes() });
});

// The driver went away (crash included): nothing to serve any more.
process.on('disconnect', () => process.exit(0));

void sim.listen(0, '127.0.0.1').then((url) => process.send!({ id: 0, url } satisfies SimResponse));
