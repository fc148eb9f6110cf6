import { createBatch } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { expectAllSettled, eventually } from '../helpers/invariants';
import { workerProcesses } from '../helpers/processes';
import { startReceiver, type Receiver } from '../helpers/receiver';

/**
 * Fault injection with real processes: the API runs in the test process, the workers are separate
 * `src/main.ts` processes (ROLE=worker) that the test kills with SIGKILL, as an OOM killer or a
 * node failure would.
 */
jest.setTimeout(120_000);

let h: Harness;
let rx: Receiver;
const workers = workerProcesses(() => h.env);
const startWorker = workers.start;

beforeEach(async () => {
  // A short lock so that the jobs of a killed worker are recovered within the test.
  h = await startHarness({ workers: false, simulator: { processingAfterMs: 100, finishAfterMs: 150 }, env: { WORKER_LOCK_MS: '2000' } });
  rx = await startReceiver();
});
afterEach(async () => {
  await workers.killAll();
  await rx.close();
  await h.close();
});

describe('a worker process killed with SIGKILL while tasks are in flight', () => {
  it('loses nothing: a restarted worker finishes every task, one upstream task each, webhooks complete and in order', async () => {
    // Slow upstream answers keep submissions in flight at the moment of the kill.
    h.sim.faults.createLatencyMs = 150;
    const ids = await createBatch(h, 16, rx.url, (i) => ({ n: 1 + (i % 3) }));
    const first = await startWorker();
    await eventually('some tasks at the upstream', async () => h.sim.createdCount() >= 3);
    expect(await first.kill('SIGKILL')).toBeNull();
    const inFlight = await h.api.db.task.count({ where: { id: { in: ids }, state: { notIn: ['succeed', 'failed'] } } });
    expect(inFlight).toBeGreaterThan(0);
    await startWorker();
    await expectAllSettled(h, ids, rx);
  });

  it('survives two workers at once and one of them dying, with no double processing', async () => {
    const ids = await createBatch(h, 12, rx.url, (i) => ({ n: 1 + (i % 3) }));
    const [a] = [await startWorker(), await startWorker()];
    await eventually('some tasks at the upstream', async () => h.sim.createdCount() >= 2);
    await a.kill('SIGKILL');
    await expectAllSettled(h, ids, rx);
    expect(h.sim.createdCount()).toBe(ids.length);
  });
});

describe('graceful shutdown', () => {
  it('lets in-flight submissions finish on SIGTERM and exits 0', async () => {
    h.sim.faults.createLatencyMs = 800;
    const ids = await createBatch(h, 3, rx.url, (i) => ({ n: 1 + (i % 3) }));
    const w = await startWorker();
    await eventually('a submission in flight', async () => h.sim.received.some((r) => r.method === 'POST'));
    expect(await w.kill('SIGTERM')).toBe(0);
    expect(w.output()).toMatch(/"msg":"stopped"/);
    // Whatever had been sent upstream when SIGTERM came was recorded before the exit.
    await h.sim.settle();
    const created = [...h.sim.tasks.values()].map((u) => u.external_task_id);
    const recorded = await h.api.db.task.findMany({ where: { id: { in: ids }, upstreamTaskId: { not: null } } });
    expect(recorded.map((t) => t.id).sort()).toEqual(ids.filter((id) => created.includes(id)).sort());
    await startWorker();
    await expectAllSettled(h, ids, rx);
  });
});
