import request from 'supertest';
import { PNG } from 'pngjs';
import { callbackPath } from '../../src/callbacks/callback-token';
import { startHarness, type Harness } from '../helpers/harness';
import { bearer } from '../helpers/fixtures';

let h: Harness;
let key: string;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});
beforeEach(async () => {
  await h.reset();
  key = (await h.newTenant('alice')).api_key;
});

const create = (body: object, token = key) => request(h.url).post('/v1/images/generations').set(bearer(token)).send(body);
const get = (id: string, token = key) =>
  request(h.url)
    .get(`/v1/images/generations/${encodeURIComponent(id)}`)
    .set(bearer(token));

describe('the pipeline, end to end', () => {
  it('takes a task from create to succeed with n real images, and records every step', async () => {
    const res = await create({ prompt: 'a red fox', n: 3, aspect_ratio: '16:9' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ code: 0, message: expect.any(String), request_id: expect.any(String) });
    expect(res.body.data).toMatchObject({ task_id: expect.any(String), task_status: 'submitted', created_at: expect.any(Number) });
    const id = res.body.data.task_id;

    const done = await h.waitForTask(id, (t) => t.state === 'succeed');
    expect(done.upstreamTaskId).toBeTruthy();

    const status = await get(id);
    expect(status.status).toBe(200);
    expect(status.body.data).toMatchObject({ task_id: id, task_status: 'succeed', tracker: { state: 'succeed' } });
    const images = status.body.data.task_result.images as { index: number; url: string }[];
    expect(images.map((i) => i.index)).toEqual([0, 1, 2]);
    const png = PNG.sync.read(
      (await fetch(images[0].url)
        .then((r) => r.arrayBuffer())
        .then(Buffer.from)) as Buffer,
    );
    expect(png.width / png.height).toBeCloseTo(16 / 9, 1);

    const events = await h.api.db.taskEvent.findMany({ where: { taskId: id }, orderBy: { seq: 'asc' } });
    // The simulator's processing and success callbacks come 30 ms apart, and either may be applied
    // first: applied after the success, processing is stale and not recorded (the task never goes back).
    const steps = events.map((e) => [e.seq, e.fromState, e.toState]);
    const expected = [
      [1, null, 'queued'],
      [2, 'queued', 'submitted'],
      [3, 'submitted', 'processing'],
      [4, 'processing', 'succeed'],
    ];
    expect([expected, [...expected.slice(0, 2), [3, 'submitted', 'succeed']]]).toContainEqual(steps);
    expect(events.slice(1).every((e) => e.payload !== null)).toBe(true);
  });

  it("sends the stored request upstream with our callback URL and task id, never the client's", async () => {
    const res = await create({
      prompt: 'a cat',
      external_task_id: 'client-7',
      callback_url: 'https://client.example/hook',
      resolution: '2k',
    });
    const id = res.body.data.task_id;
    await h.waitForTask(id, (t) => t.state === 'succeed');
    const posts = h.sim.received.filter((r) => r.method === 'POST');
    expect(posts).toHaveLength(1);
    const sent = posts[0].body as Record<string, unknown>;
    expect(sent).toMatchObject({ prompt: 'a cat', resolution: '2k', model_name: 'kling-v3', external_task_id: id });
    expect(sent.callback_url).toMatch(new RegExp(`^${h.url}/callbacks/kling/${id}/[A-Za-z0-9_-]{20,}$`));
    expect(posts[0].authorization).toBe('Bearer sim-upstream-key');
  });

  it('ends failed with the upstream message when the upstream fails the task', async () => {
    h.sim.faults.outcome = 'failed';
    h.sim.faults.failMessage = 'Content safety check failed';
    const id = (await create({ prompt: 'something' })).body.data.task_id;
    await h.waitForTask(id, (t) => t.state === 'failed');
    const status = await get(id);
    expect(status.body.data).toMatchObject({ task_status: 'failed', task_status_msg: 'Content safety check failed' });
    expect(status.body.data.tracker.failure_reason).toBe('upstream_failed');
  });

  it("finds a task by the client's external_task_id, in the path and as a query", async () => {
    const id = (await create({ prompt: 'x', external_task_id: 'my-own-id' })).body.data.task_id;
    const byPath = await get('my-own-id');
    expect(byPath.body.data).toMatchObject({ task_id: id, task_info: { external_task_id: 'my-own-id' } });
    const byQuery = await request(h.url).get('/v1/images/generations?external_task_id=my-own-id').set(bearer(key));
    expect(byQuery.body.data.task_id).toBe(id);
  });

  it('refuses a second task with the same external_task_id of one tenant, but not of another', async () => {
    expect((await create({ prompt: 'x', external_task_id: 'dup' })).status).toBe(200);
    const again = await create({ prompt: 'y', external_task_id: 'dup' });
    expect(again.status).toBe(400);
    expect(again.body).toMatchObject({ code: 1201, message: expect.stringContaining('external_task_id') });
    const bob = (await h.newTenant('bob')).api_key;
    expect((await create({ prompt: 'z', external_task_id: 'dup' }, bob)).status).toBe(200);
    expect(await h.api.db.task.count()).toBe(2);
  });

  it("lists the tenant's tasks newest first with Kling paging", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await create({ prompt: `p${i}` })).body.data.task_id);
    const page1 = await request(h.url).get('/v1/images/generations?pageNum=1&pageSize=2').set(bearer(key));
    expect(page1.body.data.map((t: { task_id: string }) => t.task_id)).toEqual([ids[2], ids[1]]);
    const page2 = await request(h.url).get('/v1/images/generations?pageNum=2&pageSize=2').set(bearer(key));
    expect(page2.body.data.map((t: { task_id: string }) => t.task_id)).toEqual([ids[0]]);
    const bad = await request(h.url).get('/v1/images/generations?pageSize=501').set(bearer(key));
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ code: 1201, message: expect.stringContaining('pageSize') });
  });
});

describe('tenant isolation', () => {
  it("answers 404/1203 for another tenant's task, by task_id and by external_task_id, and hides it from lists", async () => {
    const id = (await create({ prompt: 'secret', external_task_id: 'alice-1' })).body.data.task_id;
    const bob = (await h.newTenant('bob')).api_key;
    for (const ref of [id, 'alice-1']) {
      const res = await get(ref, bob);
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ code: 1203 });
    }
    const list = await request(h.url).get('/v1/images/generations').set(bearer(bob));
    expect(list.body.data).toEqual([]);
  });

  it('refuses missing, malformed, unknown and revoked keys with Kling auth codes', async () => {
    expect((await request(h.url).get('/v1/images/generations')).body.code).toBe(1001);
    expect((await request(h.url).get('/v1/images/generations').set('authorization', 'Basic abc')).body.code).toBe(1002);
    const unknown = await request(h.url).get('/v1/images/generations').set(bearer('kt_nope'));
    expect([unknown.status, unknown.body.code]).toEqual([401, 1002]);
    const carol = await h.newTenant('carol');
    await h.api.db.tenant.update({ where: { id: carol.id }, data: { revokedAt: new Date() } });
    expect((await request(h.url).get('/v1/images/generations').set(bearer(carol.api_key))).status).toBe(401);
  });
});

describe('upstream callbacks', () => {
  async function succeededTask() {
    const id = (await create({ prompt: 'x', n: 2 })).body.data.task_id;
    const task = await h.waitForTask(id, (t) => t.state === 'succeed');
    await h.sim.settle();
    return task;
  }

  it('refuses a callback with a wrong token with 401 and changes nothing', async () => {
    h.sim.faults.loseCallbacks = true;
    const id = (await create({ prompt: 'x' })).body.data.task_id;
    const task = await h.waitForTask(id, (t) => t.state === 'submitted');
    const res = await request(h.url)
      .post(callbackPath(id, 'wrong-token-wrong-token'))
      .send({ task_id: task.upstreamTaskId, task_status: 'succeed', task_result: { images: [{ index: 0, url: 'http://evil/x.png' }] } });
    expect(res.status).toBe(401);
    expect(res.body.code).toBe(1002);
    const after = await h.api.db.task.findUniqueOrThrow({ where: { id } });
    expect(after.state).toBe('submitted');
    expect(after.result).toBeNull();
  });

  it('ignores duplicate and out-of-order callbacks: never backwards, terminal is final', async () => {
    const task = await succeededTask();
    const url = callbackPath(task.id, h.api.callbackTokens.forTask(task.id));
    const eventsBefore = await h.api.db.taskEvent.count({ where: { taskId: task.id } });
    for (const status of ['processing', 'submitted', 'succeed', 'failed']) {
      const res = await request(h.url).post(url).send({ task_id: task.upstreamTaskId, task_status: status, updated_at: Date.now() });
      expect(res.status).toBe(200);
      expect(res.body.data.applied).toBe(false);
    }
    const after = await h.api.db.task.findUniqueOrThrow({ where: { id: task.id } });
    expect(after.state).toBe('succeed');
    expect(await h.api.db.taskEvent.count({ where: { taskId: task.id } })).toBe(eventsBefore);
  });

  it('applies a late processing callback after succeed as a no-op when the simulator reorders them', async () => {
    h.sim.faults.reorderCallbacks = true;
    h.sim.faults.duplicateCallbacks = true;
    const task = await succeededTask();
    const events = await h.api.db.taskEvent.findMany({ where: { taskId: task.id }, orderBy: { seq: 'asc' } });
    const states = events.map((e) => e.toState);
    expect(states[states.length - 1]).toBe('succeed');
    expect(new Set(states).size).toBe(states.length);
  });

  it('ignores a stale update older than the newest one applied', async () => {
    h.sim.faults.loseCallbacks = true;
    const id = (await create({ prompt: 'x' })).body.data.task_id;
    const task = await h.waitForTask(id, (t) => t.state === 'submitted');
    const url = callbackPath(id, h.api.callbackTokens.forTask(id));
    const t0 = Number(task.upstreamUpdatedAt);
    const stale = await request(h.url)
      .post(url)
      .send({ task_id: task.upstreamTaskId, task_status: 'processing', updated_at: t0 - 1000 });
    expect(stale.body.data.applied).toBe(false);
    expect((await h.api.db.task.findUniqueOrThrow({ where: { id } })).state).toBe('submitted');
    const fresh = await request(h.url)
      .post(url)
      .send({ task_id: task.upstreamTaskId, task_status: 'processing', updated_at: t0 + 1000 });
    expect(fresh.body.data.applied).toBe(true);
  });

  it('decides a callback on the current row when the task changed since its previous callback', async () => {
    h.sim.faults.loseCallbacks = true;
    const id = (await create({ prompt: 'x' })).body.data.task_id;
    const task = await h.waitForTask(id, (t) => t.state === 'submitted');
    const url = callbackPath(id, h.api.callbackTokens.forTask(id));
    const send = (task_status: string, images: object[] = []) =>
      request(h.url).post(url).send({ task_id: task.upstreamTaskId, task_status, task_result: { images } });
    expect((await send('processing')).body.data.applied).toBe(true);
    // Another writer after that callback: the client cancels, so the outcome must be discarded.
    const cancel = await request(h.url).post(`/v1/images/generations/${id}/cancel`).set(bearer(key));
    expect(cancel.body.data.tracker.state).toBe('canceling');
    expect((await send('succeed', [{ index: 0, url: 'https://img.example/0.png' }])).body.data.applied).toBe(true);
    const after = await h.api.db.task.findUniqueOrThrow({ where: { id } });
    expect([after.state, after.failureReason, after.result]).toEqual(['failed', 'canceled', null]);
  });

  it('keeps a task pollable on an undocumented status, and refuses a callback for another upstream task', async () => {
    h.sim.faults.loseCallbacks = true;
    const id = (await create({ prompt: 'x' })).body.data.task_id;
    const task = await h.waitForTask(id, (t) => t.state === 'submitted');
    const url = callbackPath(id, h.api.callbackTokens.forTask(id));
    const odd = await request(h.url).post(url).send({ task_id: task.upstreamTaskId, task_status: 'moderating' });
    expect([odd.status, odd.body.data.applied]).toEqual([200, false]);
    const other = await request(h.url).post(url).send({ task_id: 'someone-else', task_status: 'succeed' });
    expect(other.status).toBe(400);
    const lenient = await request(h.url).post(url).send({ task_id: task.upstreamTaskId });
    expect([lenient.status, lenient.body.code]).toEqual([400, 1201]);
    expect((await h.api.db.task.findUniqueOrThrow({ where: { id } })).state).toBe('submitted');
  });
});

describe('upstream errors', () => {
  it('retries a retryable upstream error and ends with exactly one upstream task', async () => {
    h.sim.faults.createErrors.push({ http: 429, code: 1303, message: 'concurrency limit' }, { http: 500, code: 5000, message: 'internal' });
    const id = (await create({ prompt: 'x', n: 2 })).body.data.task_id;
    const done = await h.waitForTask(id, (t) => t.state === 'succeed');
    expect(done.submitAttempts).toBe(3);
    expect(h.sim.createdCount()).toBe(1);
    expect([...h.sim.tasks.values()].filter((t) => t.external_task_id === id)).toHaveLength(1);
  });

  it('fails the task with the upstream message on a permanent error, without retrying', async () => {
    h.sim.faults.createErrors.push({ http: 400, code: 1301, message: 'prompt violates content policy' });
    const id = (await create({ prompt: 'x' })).body.data.task_id;
    const done = await h.waitForTask(id, (t) => t.state === 'failed');
    expect(done.statusMsg).toContain('prompt violates content policy');
    expect(done.failureReason).toBe('upstream_rejected');
    expect(done.submitAttempts).toBe(1);
    expect(h.sim.createdCount()).toBe(0);
    expect((await get(id)).body.data).toMatchObject({ task_status: 'failed', task_status_msg: expect.stringContaining('content policy') });
  });
});
