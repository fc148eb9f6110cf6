import request from 'supertest';
import { slotsInUse } from '../../src/tasks/task-slots';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { eventually, lookupsByExternalId, slotsHeldByTasks } from '../helpers/invariants';
import { workerProcesses } from '../helpers/processes';
import { startReceiver, type Receiver } from '../helpers/receiver';

/**
 * A cancel or a stage timeout that lands while the task's submission call is in flight. The
 * upstream holds the call (before or after creating the task) until the test lets it go, so the
 * cancel or timeout lands inside it every time. The workers are real processes (ROLE=worker).
 */
jest.setTimeout(60_000);

let h: Harness;
let rx: Receiver;
let key: string;
const workers = workerProcesses(() => h.env);
const startWorker = workers.start;

async function setUp(env: Record<string, string> = {}) {
  // The upstream never moves a task on by itself: the test ends it when it chooses.
  h = await startHarness({ workers: false, simulator: { processingAfterMs: 600_000 }, env: { WORKER_LOCK_MS: '2000', ...env } });
  rx = await startReceiver();
  key = (await h.newTenant()).api_key;
}

afterEach(async () => {
  await workers.killAll();
  await rx.close();
  await h.close();
});

const createTask = async (body: object) => {
  const res = await request(h.url)
    .post('/v1/images/generations')
    .set(bearer(key))
    .send({ prompt: 'x', callback_url: rx.url, ...body });
  expect(res.status).toBe(200);
  return res.body.data.task_id as string;
};
const view = async (id: string) => (await request(h.url).get(`/v1/images/generations/${id}`).set(bearer(key))).body.data;
const row = (id: string) => h.api.db.task.findUniqueOrThrow({ where: { id } });
const slots = async () => ({ counter: await slotsInUse(h.api.db), tasks: await slotsHeldByTasks(h.api.db) });
const onlyUpstreamTask = () => {
  expect(h.sim.createdCount()).toBe(1);
  return [...h.sim.tasks.values()][0];
};
const webhookStatuses = () => rx.received.map((r) => r.json.task_status);

/** Every upstream task is one of ours and was followed to its end: none is left running unwatched. */
async function expectNoOrphan() {
  for (const upstream of h.sim.tasks.values()) {
    const mine = await h.api.db.task.findFirst({ where: { upstreamTaskId: upstream.task_id } });
    expect({ upstream: upstream.status, local: mine?.id }).toEqual({
      upstream: expect.stringMatching(/succeed|failed/),
      local: upstream.external_task_id,
    });
  }
}

describe('a cancel that lands while the submission call is in flight', () => {
  it('tracks the upstream task the call created to its end, holding its slots until then, and discards its result', async () => {
    await setUp();
    h.sim.faults.hangAfterCreate = true;
    const id = await createTask({ n: 2 });
    await startWorker();
    await eventually('the upstream task created, its answer held', async () => h.sim.createdCount() === 1);

    const canceled = await request(h.url).post(`/v1/images/generations/${id}/cancel`).set(bearer(key));
    expect(canceled.status).toBe(200);
    expect(canceled.body.data).toMatchObject({ task_status: 'submitted', tracker: { state: 'canceling', slots_held: 2 } });
    // Nothing is ended locally while the call's outcome is unknown.
    expect(await row(id)).toMatchObject({ state: 'queued', slotsHeld: 2, cancelReason: 'canceled' });

    h.sim.faults.hangAfterCreate = false;
    const upstream = onlyUpstreamTask();
    expect(await h.waitForTask(id, (t) => t.state === 'submitted')).toMatchObject({ upstreamTaskId: upstream.task_id, slotsHeld: 2 });
    h.sim.setTaskStatus(upstream.task_id, 'processing');
    await h.waitForTask(id, (t) => t.state === 'processing');
    // The upstream still counts the task: so do we.
    expect(await slots()).toEqual({ counter: 2, tasks: 2 });
    expect(await view(id)).toMatchObject({ task_status: 'processing', tracker: { state: 'canceling' } });

    h.sim.setTaskStatus(upstream.task_id, 'succeed');
    const ended = await h.waitForTask(id, (t) => t.state === 'failed');
    expect(ended).toMatchObject({ failureReason: 'canceled', statusMsg: 'canceled by the client', slotsHeld: 0, result: null });
    expect(await slots()).toEqual({ counter: 0, tasks: 0 });
    expect(h.sim.createdCount()).toBe(1);
    await expectNoOrphan();
    // Exactly what a cancel of a task already at the upstream sends: its progress, then the end.
    await rx.waitFor(2);
    expect(webhookStatuses()).toEqual(['processing', 'failed']);
    expect(rx.received[1].json).toMatchObject({ task_result: { images: [] }, tracker: { state: 'canceled' } });
  });

  it('survives the worker dying inside the call: the next attempt finds the upstream task and tracks it to its end', async () => {
    await setUp();
    h.sim.faults.hangAfterCreate = true;
    const id = await createTask({ n: 1 });
    const first = await startWorker();
    await eventually('the upstream task created, its answer held', async () => h.sim.createdCount() === 1);
    expect((await request(h.url).post(`/v1/images/generations/${id}/cancel`).set(bearer(key))).status).toBe(200);
    await first.kill('SIGKILL');
    // The answer now goes nowhere; the job's lock lapses and a new worker runs it again.
    h.sim.faults.hangAfterCreate = false;
    await startWorker();
    const upstream = onlyUpstreamTask();
    const adopted = await h.waitForTask(id, (t) => t.upstreamTaskId !== null, 30_000);
    expect(adopted).toMatchObject({ state: 'submitted', upstreamTaskId: upstream.task_id, slotsHeld: 1, cancelReason: 'canceled' });
    expect(lookupsByExternalId(h.sim, id)).toBeGreaterThan(0);

    h.sim.setTaskStatus(upstream.task_id, 'succeed');
    expect(await h.waitForTask(id, (t) => t.state === 'failed')).toMatchObject({ failureReason: 'canceled', slotsHeld: 0 });
    expect(await slots()).toEqual({ counter: 0, tasks: 0 });
    expect(h.sim.createdCount()).toBe(1);
    await expectNoOrphan();
  });
});

/**
 * Never reached by the clock within a test: once the task's call is in flight, the test moves the
 * task's creation back past it, so the timeout lands inside the call however slowly the worker got
 * there (a limit of a few seconds was sometimes over before a loaded machine's worker began it).
 */
const QUEUE_LIMIT_MS = 60_000;

/** Times the task out once its call is in flight, and waits for the mark; had it fired before the call began, the task would simply have ended. */
async function timedOutInsideTheCall(id: string) {
  await eventually('the submission call in flight', async () => h.sim.received.some((r) => r.method === 'POST'));
  await h.api.db.sql(`UPDATE tasks SET created_at = created_at - $2 * interval '1 millisecond' WHERE id = $1`, [id, QUEUE_LIMIT_MS + 1000]);
  const seen = await h.waitForTask(id, (t) => t.cancelRequestedAt !== null || t.state === 'failed');
  expect({ endedBeforeTheCall: seen.cancelRequestedAt === null }).toEqual({ endedBeforeTheCall: false });
  return seen;
}

describe('a queue timeout that lands while the submission call is in flight', () => {
  it('waits for the call: the task it created is tracked to its end with its slots, then fails with queue_timeout', async () => {
    await setUp({ QUEUE_TIMEOUT_MS: String(QUEUE_LIMIT_MS), SWEEP_INTERVAL_MS: '100' });
    // Held before the upstream creates anything: the timeout fires with the outcome still open.
    h.sim.faults.hang = true;
    await startWorker();
    const id = await createTask({ n: 3 });
    const marked = await timedOutInsideTheCall(id);
    expect(marked).toMatchObject({ state: 'queued', slotsHeld: 3, cancelReason: 'queue_timeout' });
    expect(marked.cancelMessage).toMatch(/QUEUE_TIMEOUT_MS/);
    expect(await view(id)).toMatchObject({ task_status: 'submitted', tracker: { state: 'timing_out', slots_held: 3 } });

    h.sim.faults.hang = false;
    const upstream = await (async () => {
      await eventually('the upstream task created', async () => h.sim.createdCount() === 1);
      return onlyUpstreamTask();
    })();
    expect(await h.waitForTask(id, (t) => t.state === 'submitted')).toMatchObject({ upstreamTaskId: upstream.task_id, slotsHeld: 3 });
    expect(await slots()).toEqual({ counter: 3, tasks: 3 });

    h.sim.setTaskStatus(upstream.task_id, 'succeed');
    const ended = await h.waitForTask(id, (t) => t.state === 'failed');
    expect(ended).toMatchObject({ failureReason: 'queue_timeout', slotsHeld: 0, result: null });
    expect(ended.statusMsg).toMatch(/QUEUE_TIMEOUT_MS/);
    expect(await slots()).toEqual({ counter: 0, tasks: 0 });
    expect(h.sim.createdCount()).toBe(1);
    await expectNoOrphan();
    await rx.waitFor(1);
    expect(webhookStatuses()).toEqual(['failed']);
    expect(rx.received[0].json).toMatchObject({ tracker: { state: 'timed_out', failure_reason: 'queue_timeout' } });
  });

  it('ends the task without a second call when the held call created nothing: the retry looks it up first', async () => {
    await setUp({ QUEUE_TIMEOUT_MS: String(QUEUE_LIMIT_MS), SWEEP_INTERVAL_MS: '100' });
    h.sim.faults.hang = true;
    await startWorker();
    const id = await createTask({ n: 1 });
    await timedOutInsideTheCall(id);
    // The held call then fails without creating anything (an upstream error after the wait).
    h.sim.faults.createErrors.push({ http: 500, code: 5000, message: 'internal error' });
    h.sim.faults.hang = false;
    const ended = await h.waitForTask(id, (t) => t.state === 'failed');
    expect(ended).toMatchObject({ failureReason: 'queue_timeout', slotsHeld: 0, upstreamTaskId: null });
    expect(h.sim.createdCount()).toBe(0);
    expect(h.sim.received.filter((r) => r.method === 'POST')).toHaveLength(1);
    expect(h.sim.received.some((r) => r.method === 'GET')).toBe(true);
    expect(await slots()).toEqual({ counter: 0, tasks: 0 });
  });
});
