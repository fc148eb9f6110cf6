import request from 'supertest';
import { counted } from '../helpers/metrics';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { expectAllSettled, eventually, lookupsByExternalId } from '../helpers/invariants';
import { startReceiver, type Receiver } from '../helpers/receiver';
import { metrics } from '../../src/observability/metrics';

/**
 * An upstream that finishes a task at once calls back before its answer to the create has reached
 * the worker: the callbacks find a task with no upstream id yet. Here the upstream cannot confirm
 * the task by its external_task_id either (a lookup finds nothing), so only the submission can.
 */
jest.setTimeout(60_000);

let h: Harness;
let rx: Receiver;

beforeEach(async () => {
  // Both callbacks (processing, succeed) leave as soon as the task is created upstream.
  h = await startHarness({ simulator: { processingAfterMs: 0, finishAfterMs: 0 } });
  rx = await startReceiver();
});
afterEach(async () => {
  await rx.close();
  await h.close();
});

/** An image task whose webhooks go to the receiver. */
async function createTask(): Promise<string> {
  const res = await request(h.url)
    .post('/v1/images/generations')
    .set(bearer((await h.newTenant()).api_key))
    .send({ prompt: 'p', callback_url: rx.url });
  expect(res.status).toBe(200);
  return res.body.data.task_id;
}

/** Kling's answer to a task it does not know, for every lookup from now on (an upstream that cannot be asked by external_task_id). */
function lookupsFindNothing(): void {
  h.sim.faults.queryErrors.push(...Array.from({ length: 100 }, () => ({ http: 404, code: 1203, message: 'task not found' })));
}

/** What the upstream got back for the callbacks it sent about a task: true for a 2xx, else the status. */
function callbackAnswers(id: string): (number | true | undefined)[] {
  const upstreamId = [...h.sim.tasks.values()].find((t) => t.external_task_id === id)?.task_id;
  return h.sim.callbacks.filter((c) => c.task_id === upstreamId).map((c) => (c.ok ? true : c.httpStatus));
}

describe('a callback that beats the answer to the create, for a task the upstream cannot confirm by its external_task_id', () => {
  it('waits for the submission to record the answer, and is applied: every callback gets a 2xx', async () => {
    lookupsFindNothing();
    h.sim.faults.hangAfterCreate = true;
    const unconfirmed = await counted(metrics.callbacks, { outcome: 'unconfirmed' });
    const id = await createTask();
    // The first callback came and asked the upstream (in the path, then the query), which knew
    // nothing: it now waits for the submission. (The simulator sends a task's callbacks in turn.)
    await eventually('the first callback asked the upstream', async () => lookupsByExternalId(h.sim, id) >= 2);
    h.sim.faults.hangAfterCreate = false;
    await expectAllSettled(h, [id], rx);
    await h.sim.settle();
    expect(callbackAnswers(id)).toEqual([true, true]);
    expect(await counted(metrics.callbacks, { outcome: 'unconfirmed' })).toBe(unconfirmed);
  });

  it('is refused with 503 when no answer is recorded within a moment, and changes nothing', async () => {
    lookupsFindNothing();
    h.sim.faults.hangAfterCreate = true;
    const unconfirmed = await counted(metrics.callbacks, { outcome: 'unconfirmed' });
    const id = await createTask();
    await eventually('both callbacks refused', async () => callbackAnswers(id).length === 2, 10_000);
    expect(callbackAnswers(id)).toEqual([503, 503]);
    expect(await counted(metrics.callbacks, { outcome: 'unconfirmed' })).toBe(unconfirmed + 2);
    expect(await h.api.db.task.findUniqueOrThrow({ where: { id } })).toMatchObject({ state: 'queued', upstreamTaskId: null });
    h.sim.faults.hangAfterCreate = false;
  });
});
