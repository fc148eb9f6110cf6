import request from 'supertest';
import { callbackPath } from '../../src/callbacks/callback-token';
import { newApiKey } from '../../src/tenants/api-key';
import { metrics } from '../../src/observability/metrics';
import { readTask } from '../../src/tasks/task-repository';
import { claimSlots, slotsInUse } from '../../src/tasks/task-slots';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { eventually, slotsHeldByTasks } from '../helpers/invariants';
import { startReceiver } from '../helpers/receiver';
import { moveUpstream, upstreamTaskOf } from '../helpers/video';
import { recordSlotPeaks } from '../helpers/slot-peaks';
import { counted } from '../helpers/metrics';

/** Pool limits with `n` image slots (and video slots enough not to matter here). */
const images = (n: number) => ({ image: n, video: 10 });

const create = (h: Harness, key: string, body: object = {}) =>
  request(h.url)
    .post('/v1/images/generations')
    .set(bearer(key))
    .send({ prompt: 'x', ...body });

describe('upstream concurrency slots', () => {
  let h: Harness;
  afterEach(async () => h.close());

  it('never holds more slots than configured, and ends with none held', async () => {
    h = await startHarness({ simulator: { processingAfterMs: 30, finishAfterMs: 60 }, env: { UPSTREAM_CONCURRENCY: '3' } });
    const peak = await recordSlotPeaks(h.config.DATABASE_URL);
    try {
      const key = (await h.newTenant()).api_key;
      const ids: string[] = [];
      for (const n of [2, 1, 3, 1, 2, 1]) ids.push((await create(h, key, { n })).body.data.task_id);
      for (const id of ids) await h.waitForTask(id, (t) => t.state === 'succeed');
      // The task of 3 images held the whole pool at once; nothing ever held more.
      expect(await peak.read()).toBe(3);
      const tasks = await h.api.db.task.findMany({ where: { id: { in: ids } } });
      expect(tasks.every((t) => t.state === 'succeed' && t.slotsHeld === 0 && t.slotsWaitSince === null)).toBe(true);
      expect(await slotsInUse(h.api.db)).toBe(0);
      expect(h.sim.createdCount()).toBe(ids.length);
    } finally {
      await peak.drop();
    }
  });

  it('lets no task overtake an older one waiting for slots, even a small one that would fit', async () => {
    // Upstream tasks run until the test moves them, so no task can end before the checks are made.
    h = await startHarness({ simulator: { processingAfterMs: 600_000 }, env: { UPSTREAM_CONCURRENCY: '3' } });
    const key = (await h.newTenant()).api_key;
    const first = (await create(h, key, { n: 2 })).body.data.task_id;
    await upstreamTaskOf(h, first);
    // 1 slot is free: the big task waits for the whole pool, and the small ones behind it must not
    // take that slot although it would fit them; they start only once the big one has ended.
    const big = (await create(h, key, { n: 3 })).body.data.task_id;
    await h.waitForTask(big, (t) => t.slotsWaitSince !== null);
    const small = [(await create(h, key, { n: 1 })).body.data.task_id, (await create(h, key, { n: 1 })).body.data.task_id];
    for (const id of small) await h.waitForTask(id, (t) => t.slotsWaitSince !== null);
    expect((await h.api.db.task.findUniqueOrThrow({ where: { id: big } })).state).toBe('queued');
    await moveUpstream(h, first, 'succeed');
    await upstreamTaskOf(h, big);
    // The big task holds the whole pool now: the small ones are still waiting.
    const waiting = await h.api.db.task.findMany({ where: { id: { in: small } } });
    expect(waiting.map((t) => [t.state, t.upstreamTaskId])).toEqual([
      ['queued', null],
      ['queued', null],
    ]);
    await moveUpstream(h, big, 'succeed');
    for (const id of small) await moveUpstream(h, id, 'succeed');
    const tasks = await h.api.db.task.findMany({ where: { id: { in: [big, ...small] } } });
    const bigEnded = tasks.find((t) => t.id === big)!.finishedAt!.getTime();
    for (const id of small) expect(tasks.find((t) => t.id === id)!.submittedAt!.getTime()).toBeGreaterThanOrEqual(bigEnded);
  });

  it('lets a task take free slots at once while older tasks have not been tried yet', async () => {
    h = await startHarness({ workers: false, env: { UPSTREAM_CONCURRENCY: '3' } });
    const key = (await h.newTenant()).api_key;
    const older = (await create(h, key, { n: 1 })).body.data.task_id;
    const younger = (await create(h, key, { n: 1 })).body.data.task_id;
    // The older task's job has not run: it is not waiting for slots, so it does not hold the younger back.
    expect((await claimSlots(h.api.db, younger, images(3))).result).toBe('claimed');
    expect((await claimSlots(h.api.db, younger, images(3))).result).toBe('held');
    expect((await claimSlots(h.api.db, older, images(3))).result).toBe('claimed');
    expect(await slotsInUse(h.api.db)).toBe(2);
  });

  it('claims for concurrent submissions together: the oldest first, never past the pool, a task counted once', async () => {
    h = await startHarness({ workers: false, env: { UPSTREAM_CONCURRENCY: '4' } });
    const key = (await h.newTenant()).api_key;
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push((await create(h, key, { n: 1 })).body.data.task_id);
    // The same task twice in one batch must not take two slots.
    const results = (await Promise.all([...ids, ids[9]].map((id) => claimSlots(h.api.db, id, images(4), true)))).map((c) => c.result);
    expect(results).toEqual([...Array(4).fill('claimed'), ...Array(6).fill('wait'), 'wait']);
    expect(await slotsInUse(h.api.db)).toBe(4);
    const tasks = await h.api.db.task.findMany({ where: { id: { in: ids } } });
    const byId = new Map(tasks.map((t) => [t.id, t]));
    expect(ids.map((id) => byId.get(id)!.submitAttempts)).toEqual([1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    expect(ids.map((id) => byId.get(id)!.slotsWaitSince !== null)).toEqual([...Array(4).fill(false), ...Array(6).fill(true)]);
  });

  it('answers a claim with the row it left, and counts only a first attempt', async () => {
    h = await startHarness({ workers: false, env: { UPSTREAM_CONCURRENCY: '3' } });
    const key = (await h.newTenant()).api_key;
    const id = (await create(h, key, { n: 2 })).body.data.task_id;
    const xmin = async () => (await h.api.db.sql<{ v: string }>('SELECT xmin::text AS v FROM tasks WHERE id = $1', [id])).rows[0].v;
    const first = await claimSlots(h.api.db, id, images(3), true);
    const row = await h.api.db.task.findUniqueOrThrow({ where: { id } });
    expect(first).toEqual({ result: 'claimed', counted: true, version: await xmin(), task: row });
    expect(row).toMatchObject({ slotsHeld: 2, submitAttempts: 1 });
    // A retried submission of a task holding its slots: nothing written, the attempt is not counted again.
    const again = await claimSlots(h.api.db, id, images(3), true);
    expect(again).toEqual({ result: 'held', counted: false, version: null, task: row });
    expect(await claimSlots(h.api.db, 'no-such-task', images(3), true)).toEqual({
      result: 'missing',
      counted: false,
      version: null,
      task: null,
    });
    await h.api.db.task.update({ where: { id }, data: { state: 'failed', slotsHeld: 0 } });
    expect(await claimSlots(h.api.db, id, images(3), true)).toMatchObject({ result: 'gone', counted: false, task: null });
  });

  it('leaves the request body (up to megabytes of image) to the claim: a status change reads the task without it', async () => {
    h = await startHarness({ workers: false });
    const key = (await h.newTenant()).api_key;
    const id = (await create(h, key, { prompt: 'a lighthouse', negative_prompt: 'fog' })).body.data.task_id;
    const stored = (await h.api.db.task.findUniqueOrThrow({ where: { id } })).request;
    expect(stored).toMatchObject({ prompt: 'a lighthouse', negative_prompt: 'fog' });
    expect(await readTask(h.api.db, id)).toMatchObject({ id, state: 'queued', request: null });
    expect((await claimSlots(h.api.db, id, images(3), true)).task?.request).toEqual(stored);
  });

  it('keeps the slot counter equal to the slots the tasks hold, whatever writes them', async () => {
    h = await startHarness({ workers: false, env: { UPSTREAM_CONCURRENCY: '100' } });
    const db = h.api.db;
    const key = (await h.newTenant()).api_key;
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push((await create(h, key, { n: 1 + (i % 3) })).body.data.task_id);
    const exact = async (held: number) =>
      expect({ counter: await slotsInUse(db), tasks: await slotsHeldByTasks(db) }).toEqual({ counter: held, tasks: held });
    await Promise.all(ids.map((id) => claimSlots(db, id, images(100), true)));
    await exact(60);
    // Releases on many connections at once (each a transaction of its own), then other writers.
    await Promise.all(ids.slice(0, 20).map((id) => db.sql("UPDATE tasks SET state = 'failed', slots_held = 0 WHERE id = $1", [id])));
    await exact(21);
    await db.task.update({ where: { id: ids[20] }, data: { slotsHeld: 5 } });
    await exact(23);
    await db.task.delete({ where: { id: ids[21] } });
    await exact(22);
    // Zeroed in place, not deleted: deleted rows would stay for every later claim to read until a vacuum.
    const rows = async () => (await db.sql<{ n: number }>('SELECT count(*)::int AS n FROM slot_counts')).rows[0].n;
    const kept = await rows();
    expect(kept).toBeGreaterThan(0);
    await db.sql('TRUNCATE tasks CASCADE');
    await exact(0);
    expect(await rows()).toBe(kept);
  });

  it('refuses at create a task asking for more images than any enabled account has, naming n, and records nothing', async () => {
    h = await startHarness({ env: { UPSTREAM_CONCURRENCY: '2' } });
    const key = (await h.newTenant()).api_key;
    const res = await create(h, key, { n: 5 });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 1201, message: expect.stringMatching(/^n: /) });
    expect(await h.api.db.task.count()).toBe(0);
    expect((await create(h, key, { n: 2 })).status).toBe(200);
  });

  it('gives a task accepted before the limits were lowered the whole pool instead of starving it', async () => {
    h = await startHarness({ workers: false, env: { UPSTREAM_CONCURRENCY: '10' } });
    const key = (await h.newTenant()).api_key;
    const id = (await create(h, key, { n: 5 })).body.data.task_id;
    expect(await claimSlots(h.api.db, id, images(2), true)).toMatchObject({ result: 'claimed', task: { slotsHeld: 2 } });
  });

  it('pauses submission on 1303 instead of failing tasks, and creates each upstream task once', async () => {
    // Each task stays at the upstream long enough that the five overlap there however slowly they
    // are created (created one by one, 150 ms each let a loaded machine finish them two at a time).
    h = await startHarness({ simulator: { processingAfterMs: 500, finishAfterMs: 500 }, env: { UPSTREAM_CONCURRENCY: '10' } });
    // The account is shared with someone else: the upstream is full long before our own count is.
    h.sim.faults.concurrencyLimit = 2;
    const key = (await h.newTenant()).api_key;
    const ids = await Promise.all([...Array(5)].map(async () => (await create(h, key)).body.data.task_id as string));
    for (const id of ids) await h.waitForTask(id, (t) => t.state === 'succeed');
    const rejections = h.sim.received.filter((r) => r.method === 'POST').length - h.sim.createdCount();
    expect(rejections).toBeGreaterThan(0);
    expect(h.sim.createdCount()).toBe(5);
    expect(await slotsInUse(h.api.db)).toBe(0);
  });

  it('pauses once for 1303s that answer submissions made together, not once per task', async () => {
    // A second's pause: eight refusals counted one by one would double it seven times (to the one-minute cap).
    h = await startHarness({ env: { UPSTREAM_THROTTLE_PAUSE_MS: '1000' } });
    // The account is full with someone else's tasks for a moment. The answers take half a second,
    // so the eight submissions are all under way before the first refusal comes back.
    h.sim.faults.createLatencyMs = 500;
    h.sim.faults.createOutage = { http: 429, code: 1303, message: 'parallel task over resource pack limit' };
    const refusals = () => counted(metrics.accountSubmissions, { outcome: '1303' });
    const before = await refusals();
    const key = (await h.newTenant()).api_key;
    const ids = await Promise.all([...Array(8)].map(async () => (await create(h, key)).body.data.task_id as string));
    await eventually('the eight refusals', async () => (await refusals()) - before >= 8);
    // The account's usable slots are lowered for the pause of one round (a second), not a minute.
    const { rows } = await h.api.db.sql<{ left_ms: number }>(
      `SELECT extract(epoch FROM (slot_caps -> 'image' ->> 'until')::timestamptz - now()) * 1000 AS left_ms FROM upstream_accounts`,
    );
    expect(rows.map((r) => Number(r.left_ms) < 10_000)).toEqual([true]);
    h.sim.faults.createOutage = undefined;
    h.sim.faults.createLatencyMs = 0;
    for (const id of ids) await h.waitForTask(id, (t) => t.state === 'succeed');
    expect(h.sim.createdCount()).toBe(8);
  });
});

describe('POST /v1/images/generations/{id}/cancel', () => {
  let h: Harness;
  afterEach(async () => h.close());

  it('cancels a task not yet submitted at once: failed for the client, canceled in the extension, webhook sent', async () => {
    h = await startHarness({ workers: false });
    const rx = await startReceiver();
    try {
      const tenant = await h.newTenant();
      const id = (await create(h, tenant.api_key, { callback_url: rx.url })).body.data.task_id;
      const res = await request(h.url).post(`/v1/images/generations/${id}/cancel`).set(bearer(tenant.api_key));
      expect(res.status).toBe(200);
      expect(res.body.data).toMatchObject({
        task_status: 'failed',
        task_status_msg: 'canceled by the client',
        tracker: { state: 'canceled' },
      });
      const deliveries = await h.api.db.webhookDelivery.findMany({ where: { taskId: id } });
      expect(deliveries.map((d) => d.eventType)).toEqual(['task.failed']);
      const again = await request(h.url).post(`/v1/images/generations/${id}/cancel`).set(bearer(tenant.api_key));
      expect([again.status, again.body.code]).toEqual([400, 1201]);
    } finally {
      await rx.close();
    }
  });

  it('marks a submitted task canceling and discards its result when the upstream finishes', async () => {
    // `processing` 1.5 s after the submission: the cancel must reach a task still `submitted` even on
    // a loaded machine (a fresh-clone run saw 300 ms pass between the wait and the cancel).
    h = await startHarness({ simulator: { processingAfterMs: 1500, finishAfterMs: 200 } });
    const rx = await startReceiver();
    try {
      const tenant = await h.newTenant();
      const id = (await create(h, tenant.api_key, { callback_url: rx.url })).body.data.task_id;
      await h.waitForTask(id, (t) => t.state === 'submitted');
      const res = await request(h.url).post(`/v1/images/generations/${id}/cancel`).set(bearer(tenant.api_key));
      expect(res.body.data).toMatchObject({ task_status: 'submitted', tracker: { state: 'canceling' } });
      const t = await h.waitForTask(id, (x) => x.state === 'failed');
      expect(t).toMatchObject({ failureReason: 'canceled', statusMsg: 'canceled by the client', result: null, slotsHeld: 0 });
      await h.sim.settle();
      expect([...h.sim.tasks.values()][0].status).toBe('succeed');
      await rx.waitFor(2);
      expect(rx.received.map((r) => r.json.task_status)).toEqual(['processing', 'failed']);
    } finally {
      await rx.close();
    }
  });

  it("answers 404 for another tenant's task and changes nothing", async () => {
    h = await startHarness({ workers: false });
    const a = await h.newTenant('a');
    const b = await h.newTenant('b');
    const id = (await create(h, a.api_key)).body.data.task_id;
    const res = await request(h.url).post(`/v1/images/generations/${id}/cancel`).set(bearer(b.api_key));
    expect([res.status, res.body.code]).toEqual([404, 1203]);
    expect((await h.api.db.task.findUniqueOrThrow({ where: { id } })).state).toBe('queued');
  });
});

describe('Postgres outage', () => {
  let h: Harness;
  afterEach(async () => h.close());

  it('answers 503 with a Kling-style error on the API and a 5xx on callbacks', async () => {
    h = await startHarness({ workers: false, apiEnv: { DATABASE_URL: 'postgresql://postgres:postgres@127.0.0.1:1/kling_tracker' } });
    // Well-formed credentials, so that answering needs the database (a malformed one is refused without it).
    const key = newApiKey();
    for (const res of [
      await request(h.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'x' }),
      await request(h.url).get('/v1/images/generations/abc').set(bearer(key)),
      await request(h.url)
        .post(callbackPath('abc', h.api.callbackTokens.forTask('abc')))
        .send({ task_id: '1', task_status: 'succeed' }),
    ]) {
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ code: 5001, message: expect.stringMatching(/temporarily unavailable/), request_id: expect.any(String) });
    }
    const ready = await request(h.url).get('/readyz');
    expect([ready.status, ready.body.data.postgres]).toEqual([503, 'down']);
  });
});
