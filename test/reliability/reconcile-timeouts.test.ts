import request from 'supertest';
import { pollDelayMs, MAX_POLL_INTERVAL_MS } from '../../src/tasks/task-polling';
import { slotsInUse } from '../../src/tasks/task-slots';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';

const create = (h: Harness, key: string, body: object = {}) =>
  request(h.url)
    .post('/v1/images/generations')
    .set(bearer(key))
    .send({ prompt: 'x', ...body });

describe('poll backoff', () => {
  it('polls fast at first, slower later, and never less often than the cap', () => {
    expect([1, 2, 3].map((k) => pollDelayMs(1000, k))).toEqual([2000, 4000, 8000]);
    expect(pollDelayMs(30_000, 50)).toBe(MAX_POLL_INTERVAL_MS);
  });
});

describe('reconciliation when callbacks are lost', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ env: { UPSTREAM_POLL_AFTER_MS: '100', RECONCILE_INTERVAL_MS: '100' } });
  });
  afterAll(async () => h.close());
  beforeEach(async () => h.reset());

  it("brings every task of a batch to the upstream's terminal state by polling", async () => {
    h.sim.faults.loseCallbacks = true;
    const key = (await h.newTenant()).api_key;
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      if (i === 3) h.sim.faults.outcome = 'failed';
      ids.push((await create(h, key)).body.data.task_id);
    }
    for (const id of ids) await h.waitForTask(id, (t) => t.state === 'succeed' || t.state === 'failed');
    await h.sim.settle();
    const tasks = await h.api.db.task.findMany({ where: { id: { in: ids } } });
    for (const t of tasks) {
      expect(t.state).toBe(h.sim.tasks.get(t.upstreamTaskId!)!.status);
      expect(t.nextPollAt).toBeNull();
    }
    expect(h.sim.callbacks.filter((c) => c.ok)).toHaveLength(0);
    const sources = await h.api.db.taskEvent.findMany({ where: { toState: { in: ['succeed', 'failed'] } }, select: { source: true } });
    expect(new Set(sources.map((s) => s.source))).toEqual(new Set(['poll']));
    expect(await slotsInUse(h.api.db)).toBe(0);
  });

  it('keeps a task with an undocumented upstream status pollable, backing off, never failing it', async () => {
    h.sim.faults.loseCallbacks = true;
    const key = (await h.newTenant()).api_key;
    const id = (await create(h, key)).body.data.task_id;
    const submitted = await h.waitForTask(id, (t) => t.upstreamTaskId !== null);
    const upstream = h.sim.tasks.get(submitted.upstreamTaskId!)!;
    h.sim.setTaskStatus(upstream.task_id, 'processing', { sendCallback: false });
    await h.waitForTask(id, (t) => t.state === 'processing');
    (upstream as { status: string }).status = 'under_review';
    const polled = await h.waitForTask(id, (t) => t.pollCount >= 2);
    expect(polled.state).toBe('processing');
    expect(polled.nextPollAt!.getTime()).toBeGreaterThan(Date.now());
  });

  it('pauses polling when the upstream throttles queries, then catches up', async () => {
    h.sim.faults.loseCallbacks = true;
    const key = (await h.newTenant()).api_key;
    const id = (await create(h, key)).body.data.task_id;
    await h.waitForTask(id, (t) => t.state === 'submitted');
    h.sim.faults.queryErrors.push({ http: 429, code: 1302, message: 'rate limit' });
    await h.waitForTask(id, (t) => t.state === 'succeed');
    expect(h.sim.faults.queryErrors).toHaveLength(0);
  });
});

describe('stage timeouts', () => {
  let h: Harness;
  afterEach(async () => h.close());

  it('fails a task the upstream never starts with start_timeout, and releases its slots', async () => {
    h = await startHarness({ simulator: { processingAfterMs: 60_000 }, env: { START_TIMEOUT_MS: '300', SWEEP_INTERVAL_MS: '100' } });
    const key = (await h.newTenant()).api_key;
    const id = (await create(h, key, { n: 3 })).body.data.task_id;
    const t = await h.waitForTask(id, (x) => x.state === 'failed');
    expect(t).toMatchObject({ failureReason: 'start_timeout', slotsHeld: 0 });
    expect(t.statusMsg).toMatch(/START_TIMEOUT_MS/);
    const view = await request(h.url).get(`/v1/images/generations/${id}`).set(bearer(key));
    expect(view.body.data).toMatchObject({ task_status: 'failed', tracker: { state: 'timed_out', failure_reason: 'start_timeout' } });
  });

  it('fails a task still processing past the total limit with total_timeout', async () => {
    h = await startHarness({
      simulator: { processingAfterMs: 10, finishAfterMs: 600_000 },
      env: { TOTAL_TIMEOUT_MS: '300000', SWEEP_INTERVAL_MS: '100' },
    });
    const key = (await h.newTenant()).api_key;
    const id = (await create(h, key)).body.data.task_id;
    // The limit counts from creation: the task is seen processing first, then made older than it,
    // so a slow machine cannot let the limit pass before the upstream has started the task.
    await h.waitForTask(id, (x) => x.state === 'processing');
    await h.api.db.task.update({ where: { id }, data: { createdAt: new Date(Date.now() - 301_000) } });
    const t = await h.waitForTask(id, (x) => x.state === 'failed');
    expect(t.failureReason).toBe('total_timeout');
    const reached = await h.api.db.taskEvent.findMany({ where: { taskId: id }, select: { toState: true } });
    expect(reached.map((e) => e.toState)).toContain('processing');
    expect(t.statusMsg).toMatch(/TOTAL_TIMEOUT_MS/);
  });

  it('fails a task waiting too long for a slot with queue_timeout, naming the limit', async () => {
    h = await startHarness({
      simulator: { processingAfterMs: 60_000 },
      env: { UPSTREAM_CONCURRENCY: '1', QUEUE_TIMEOUT_MS: '400', SWEEP_INTERVAL_MS: '100' },
    });
    const key = (await h.newTenant()).api_key;
    const first = (await create(h, key)).body.data.task_id;
    await h.waitForTask(first, (x) => x.state === 'submitted');
    const second = (await create(h, key)).body.data.task_id;
    const waiting = await request(h.url).get(`/v1/images/generations/${second}`).set(bearer(key));
    expect(waiting.body.data).toMatchObject({ task_status: 'submitted', tracker: { state: 'queued', queue_position: 1 } });
    const t = await h.waitForTask(second, (x) => x.state === 'failed');
    expect(t.failureReason).toBe('queue_timeout');
    expect(t.statusMsg).toMatch(/local queue.*QUEUE_TIMEOUT_MS/);
    expect(h.sim.createdCount()).toBe(1);
  });
});
