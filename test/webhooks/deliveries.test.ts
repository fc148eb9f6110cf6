import { startHarness, type Harness } from '../helpers/harness';
import { insertQueuedTask } from '../helpers/fixtures';
import { newDeliveryId } from '../../src/webhooks/events';
import { readDueDelivery, recordAttempt } from '../../src/webhooks/deliveries.service';
import { rotateWebhookSecret } from '../../src/tenants/tenants.service';
import { sealContext, webhookSecretOpener } from '../../src/tenants/secret-box';
import type { AttemptResult } from '../../src/webhooks/webhook-sender';

// No workers: nothing but the test moves these rows (no sweep, no deliver jobs).
let h: Harness;
let tenantId: string;
let taskId: string;

beforeAll(async () => {
  h = await startHarness({ workers: false });
});
afterAll(async () => h.close());
beforeEach(async () => {
  await h.reset();
  tenantId = (await h.newTenant('rows')).id;
  taskId = await insertQueuedTask(h.api.db, tenantId, 'http://127.0.0.1:9/hook');
});

const SCHEDULE = [0, 50, 100];

const addDelivery = (seq: number, data: { status?: 'pending' | 'delivered' | 'gone' | 'dead'; nextAttemptAt?: Date | null } = {}) =>
  h.api.db.webhookDelivery.create({
    data: {
      id: newDeliveryId(),
      taskId,
      tenantId,
      seq,
      eventType: 'task.processing',
      url: 'http://127.0.0.1:9/hook',
      body: '{}',
      nextAttemptAt: new Date(),
      ...data,
    },
  });

const result = (r: Partial<AttemptResult>): AttemptResult => ({ ok: false, durationMs: 12, startedAt: new Date(), ...r });
const attemptsOf = (deliveryId: string) => h.api.db.webhookAttempt.findMany({ where: { deliveryId }, orderBy: { id: 'asc' } });

describe('recordAttempt', () => {
  it('returns the updated delivery exactly as Prisma reads it, and records the attempt', async () => {
    const d = await addDelivery(1);
    const startedAt = new Date(Date.now() - 40);
    const before = Date.now();
    const out = await recordAttempt(h.api.db, d, result({ ok: true, httpStatus: 204, responseBody: 'fine', startedAt }), SCHEDULE);
    expect(out).toMatchObject({ finished: true, successor: null });
    expect(out!.delivery).toEqual(await h.api.db.webhookDelivery.findUnique({ where: { id: d.id } }));
    expect(out!.delivery).toMatchObject({ status: 'delivered', attemptCount: 1, nextAttemptAt: null, lastError: null });
    expect(out!.delivery.deliveredAt!.getTime()).toBeGreaterThanOrEqual(before - 1);
    expect(out!.delivery.updatedAt.getTime()).toBeGreaterThanOrEqual(before - 1);
    expect(await attemptsOf(d.id)).toEqual([
      expect.objectContaining({ chain: 1, attempt: 1, startedAt, durationMs: 12, httpStatus: 204, error: null, responseBody: 'fine' }),
    ]);
  });

  it('keeps a failed delivery pending with its next attempt time, then ends it: gone on 410, dead when the schedule is used up', async () => {
    const d = await addDelivery(1);
    const before = Date.now();
    const first = await recordAttempt(h.api.db, d, result({ httpStatus: 500 }), SCHEDULE);
    expect(first).toMatchObject({ finished: false, successor: null });
    expect(first!.delivery).toMatchObject({ status: 'pending', attemptCount: 1, lastError: 'HTTP 500', deliveredAt: null });
    // Schedule entry 1 (50 ms) with +-20% jitter.
    const delay = first!.delivery.nextAttemptAt!.getTime() - before;
    expect(delay).toBeGreaterThanOrEqual(39);
    expect(delay).toBeLessThan(1000);

    const second = await recordAttempt(h.api.db, first!.delivery, result({ error: 'connect ECONNREFUSED' }), SCHEDULE);
    expect(second!.delivery).toMatchObject({ status: 'pending', attemptCount: 2, lastError: 'connect ECONNREFUSED' });
    const third = await recordAttempt(h.api.db, second!.delivery, result({ httpStatus: 503 }), SCHEDULE);
    expect(third).toMatchObject({ finished: true, delivery: { status: 'dead', attemptCount: 3, nextAttemptAt: null, deliveredAt: null } });

    const other = await addDelivery(2);
    const gone = await recordAttempt(h.api.db, other, result({ httpStatus: 410 }), SCHEDULE);
    expect(gone).toMatchObject({
      finished: true,
      delivery: { status: 'gone', attemptCount: 1, lastError: 'HTTP 410', nextAttemptAt: null },
    });
    expect((await attemptsOf(d.id)).map((a) => [a.attempt, a.httpStatus, a.error])).toEqual([
      [1, 500, null],
      [2, null, 'connect ECONNREFUSED'],
      [3, 503, null],
    ]);
  });

  it('records one attempt once when two writers race with the same read, and nothing for a stale read', async () => {
    const d = await addDelivery(1);
    const outs = await Promise.all([
      recordAttempt(h.api.db, d, result({ httpStatus: 500 }), SCHEDULE),
      recordAttempt(h.api.db, d, result({ ok: true, httpStatus: 200 }), SCHEDULE),
    ]);
    expect(outs.filter((o) => o === null)).toHaveLength(1);
    const winner = outs.find((o) => o !== null)!;
    expect(await attemptsOf(d.id)).toHaveLength(1);
    expect(await h.api.db.webhookDelivery.findUnique({ where: { id: d.id } })).toEqual(winner.delivery);

    // A leftover read of the same attempt, later: no change, no attempt row.
    expect(await recordAttempt(h.api.db, d, result({ ok: true, httpStatus: 200 }), SCHEDULE)).toBeNull();
    expect(await attemptsOf(d.id)).toHaveLength(1);
    // Nor for a delivery that has moved to another chain (a redelivery).
    await h.api.db.webhookDelivery.update({ where: { id: d.id }, data: { chain: 2, attemptCount: 0, status: 'pending' } });
    expect(await recordAttempt(h.api.db, { ...d, attemptCount: 0 }, result({ ok: true }), SCHEDULE)).toBeNull();
    expect(await attemptsOf(d.id)).toHaveLength(1);
  });

  it('writes records that arrive while one is being written together, each with its own guard and answer', async () => {
    const ds = await Promise.all([1, 2, 3, 4, 5].map((seq) => addDelivery(seq)));
    const [inFlight, ok, failed, gone, twice] = ds;
    // The first is written alone; the rest arrive while it is in flight and go in one statement,
    // the same attempt of `twice` included twice (only one may count).
    const outs = await Promise.all([
      recordAttempt(h.api.db, inFlight, result({ ok: true, httpStatus: 200 }), SCHEDULE),
      recordAttempt(h.api.db, ok, result({ ok: true, httpStatus: 204 }), SCHEDULE),
      recordAttempt(h.api.db, failed, result({ httpStatus: 500, responseBody: 'busy' }), SCHEDULE),
      recordAttempt(h.api.db, gone, result({ httpStatus: 410 }), SCHEDULE),
      recordAttempt(h.api.db, twice, result({ ok: true, httpStatus: 200 }), SCHEDULE),
      recordAttempt(h.api.db, twice, result({ httpStatus: 503 }), SCHEDULE),
    ]);
    expect(outs.slice(0, 4).map((o) => [o?.delivery.id, o?.delivery.status, o?.finished])).toEqual([
      [inFlight.id, 'delivered', true],
      [ok.id, 'delivered', true],
      [failed.id, 'pending', false],
      [gone.id, 'gone', true],
    ]);
    expect(outs.slice(4).filter((o) => o === null)).toHaveLength(1);
    for (const d of ds) {
      const row = await h.api.db.webhookDelivery.findUniqueOrThrow({ where: { id: d.id } });
      expect(await attemptsOf(d.id)).toEqual([expect.objectContaining({ chain: 1, attempt: 1 })]);
      expect(row.attemptCount).toBe(1);
    }
    expect((await attemptsOf(failed.id))[0]).toMatchObject({ httpStatus: 500, responseBody: 'busy' });
    const winner = outs.slice(4).find((o) => o !== null)!;
    expect(await h.api.db.webhookDelivery.findUnique({ where: { id: twice.id } })).toEqual(winner.delivery);
  });

  it("records a receiver's answer holding U+0000, and a bad record fails alone", async () => {
    const [first, nul, bad, fine] = await Promise.all([1, 2, 3, 4].map((seq) => addDelivery(seq)));
    const outs = await Promise.allSettled([
      recordAttempt(h.api.db, first, result({ ok: true }), SCHEDULE),
      recordAttempt(h.api.db, nul, result({ httpStatus: 500, responseBody: 'a\u0000b', error: 'x\u0000y' }), SCHEDULE),
      // Not a duration Postgres takes: its batch fails, and every record in it is written again alone.
      recordAttempt(h.api.db, bad, result({ ok: true, durationMs: Number.NaN }), SCHEDULE),
      recordAttempt(h.api.db, fine, result({ ok: true }), SCHEDULE),
    ]);
    expect(outs.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(await attemptsOf(nul.id)).toEqual([expect.objectContaining({ responseBody: 'a\uFFFDb', error: 'x\uFFFDy' })]);
    expect((await h.api.db.webhookDelivery.findUniqueOrThrow({ where: { id: nul.id } })).lastError).toBe('x\uFFFDy');
    expect((await h.api.db.webhookDelivery.findUniqueOrThrow({ where: { id: fine.id } })).status).toBe('delivered');
    expect(await attemptsOf(bad.id)).toEqual([]);
    expect((await h.api.db.webhookDelivery.findUniqueOrThrow({ where: { id: bad.id } })).status).toBe('pending');
  });

  it('names the next pending delivery of the task when it ends one, and none while it is still pending', async () => {
    const first = await addDelivery(1);
    await addDelivery(2, { status: 'delivered', nextAttemptAt: null });
    const third = await addDelivery(3);
    await addDelivery(4);
    const retried = await recordAttempt(h.api.db, first, result({ httpStatus: 500 }), SCHEDULE);
    expect(retried).toMatchObject({ finished: false, successor: null });
    const ended = await recordAttempt(h.api.db, retried!.delivery, result({ ok: true, httpStatus: 200 }), SCHEDULE);
    expect(ended!.successor).toEqual({ id: third.id, chain: 1, attemptCount: 0, dueAt: third.nextAttemptAt });
    const last = await recordAttempt(
      h.api.db,
      (await h.api.db.webhookDelivery.findFirst({ where: { taskId, seq: 4 } }))!,
      result({ ok: true }),
      SCHEDULE,
    );
    // The successor lookup is not the predecessor's: an earlier pending one is not a successor.
    expect(last).toMatchObject({ finished: true, successor: null });
  });
});

describe('readDueDelivery', () => {
  it('reads the delivery as Prisma does, with the earliest pending predecessor of its task', async () => {
    const due = new Date(Date.now() + 60_000);
    await addDelivery(1, { status: 'delivered', nextAttemptAt: null });
    await addDelivery(2, { nextAttemptAt: due });
    await addDelivery(3, { nextAttemptAt: null });
    const d = await addDelivery(4);
    const read = await readDueDelivery(h.api.db, d.id);
    expect(read!.delivery).toEqual(d);
    expect(read!.predecessor).toEqual({ nextAttemptAt: due });
    expect(await readDueDelivery(h.api.db, 'msg_nope')).toBeNull();
  });

  it('finds no predecessor when the earlier ones have ended, nor for a delivery no longer pending', async () => {
    await addDelivery(1, { status: 'gone', nextAttemptAt: null });
    const d = await addDelivery(2);
    expect((await readDueDelivery(h.api.db, d.id))!.predecessor).toBeNull();
    await addDelivery(3);
    const later = await addDelivery(4, { status: 'dead', nextAttemptAt: null });
    expect(await readDueDelivery(h.api.db, later.id)).toMatchObject({ delivery: { status: 'dead' }, predecessor: null });
  });

  it("gives the tenant's sealed secrets, current first, both during a rotation", async () => {
    const d = await addDelivery(1);
    const before = await h.api.db.tenant.findUniqueOrThrow({ where: { id: tenantId } });
    expect((await readDueDelivery(h.api.db, d.id))!.sealedSecrets).toEqual([before.webhookSecret]);
    const rotated = await rotateWebhookSecret(h.api.db, h.api.secrets, tenantId);
    const after = await h.api.db.tenant.findUniqueOrThrow({ where: { id: tenantId } });
    const sealed = (await readDueDelivery(h.api.db, d.id))!.sealedSecrets;
    expect(sealed).toEqual([after.webhookSecret, after.webhookSecretPrevious]);
    // The old secret is kept as the previous one (sealed again for its column), the new one first.
    const old = h.api.secrets.open(before.webhookSecret, sealContext(tenantId, 'webhook_secret'));
    expect(webhookSecretOpener(h.api.secrets)(tenantId, sealed)).toEqual([rotated!.webhook_secret, old]);
  });
});
