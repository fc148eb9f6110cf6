import { startHarness, type Harness } from '../helpers/harness';
import { expectAllSettled, eventually } from '../helpers/invariants';
import { workerProcesses } from '../helpers/processes';
import { startReceiver, type Receiver } from '../helpers/receiver';
import { createAt, FROZEN_UPSTREAM, IMAGE_PATH, moveUpstream, VIDEO_KINDS } from '../helpers/video';

/**
 * A worker process killed with SIGKILL inside its video submissions: the upstream has created the
 * tasks but holds its answers, so the dead worker never learnt their ids. The workers are real
 * processes (ROLE=worker); the API runs in the test process.
 */
jest.setTimeout(120_000);

let h: Harness;
let rx: Receiver;
const workers = workerProcesses(() => h.env);

beforeEach(async () => {
  // A short lock, so that the jobs of the killed worker run again within the test.
  h = await startHarness({ workers: false, simulator: FROZEN_UPSTREAM, env: { WORKER_LOCK_MS: '2000' } });
  rx = await startReceiver();
});
afterEach(async () => {
  await workers.killAll();
  await rx.close();
  await h.close();
});

describe('a worker killed with SIGKILL while the upstream holds the answers to its video creates', () => {
  it("ends with exactly one upstream task per task, found at its kind's path, and every webhook in order", async () => {
    const key = (await h.newTenant()).api_key;
    const tasks: { id: string; path: string }[] = [];
    for (let i = 0; i < 6; i++) {
      const { path, body } = VIDEO_KINDS[i % 2];
      tasks.push({ id: await createAt(h, key, path, { ...body, callback_url: rx.url }), path });
    }
    // An image task beside them: the same account, another pool.
    tasks.push({ id: await createAt(h, key, IMAGE_PATH, { prompt: 'x', callback_url: rx.url }), path: IMAGE_PATH });
    const ids = tasks.map((t) => t.id);

    h.sim.faults.hangAfterCreate = true;
    const first = await workers.start();
    await eventually('every task created upstream, its answer held', async () => h.sim.createdCount() === ids.length);
    expect(await first.kill('SIGKILL')).toBeNull();
    const rows = await h.api.db.task.findMany({ where: { id: { in: ids } } });
    expect(rows.map((t) => [t.state, t.upstreamTaskId, t.submitAttempts])).toEqual(ids.map(() => ['queued', null, 1]));

    // The answers now go nowhere; once the jobs' lock lapses another worker runs them again.
    h.sim.faults.hangAfterCreate = false;
    await workers.start();
    for (const { id } of tasks) await h.waitForTask(id, (t) => t.upstreamTaskId !== null, 30_000);
    // Each was found by its id at its own kind's path, not created a second time.
    for (const { id, path } of tasks) {
      const lookedUp = h.sim.received.some(
        (r) => r.method === 'GET' && (r.path === `${path}/${id}` || (r.path === path && r.query.external_task_id === id)),
      );
      expect({ id, lookedUp }).toEqual({ id, lookedUp: true });
    }
    expect(h.sim.createdCount()).toBe(ids.length);

    for (const id of ids) {
      await moveUpstream(h, id, 'processing');
      await moveUpstream(h, id, 'succeed');
    }
    await expectAllSettled(h, ids, rx);
    for (const id of ids) {
      expect(rx.received.filter((r) => r.json.task_id === id).map((r) => r.json.task_status)).toEqual(['processing', 'succeed']);
    }
  });
});
