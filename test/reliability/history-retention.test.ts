import type { Client } from 'pg';
import request from 'supertest';
import { createDb } from '../../src/db/client';
import { createLogger } from '../../src/logger';
import { metrics } from '../../src/observability/metrics';
import { pruneHistory, type PruneBounds, type Retention } from '../../src/tasks/prune-history';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { insertPastTask, rowsOf, type PastTask } from '../helpers/history';
import { eventually } from '../helpers/invariants';

const log = createLogger('silent');
const ALL = { tasks: 1, task_events: 4, webhook_deliveries: 2, webhook_attempts: 3, idempotency_keys: 1 };
const NONE = { tasks: 0, task_events: 0, webhook_deliveries: 0, webhook_attempts: 0, idempotency_keys: 0 };
/** A succeed task with two finished deliveries (three attempts) and a key: `ALL` rows. */
const finished = (createdDaysAgo: number, finishedDaysAgo: number, key?: string): PastTask => ({
  state: 'succeed',
  createdDaysAgo,
  finishedDaysAgo,
  deliveries: [
    { status: 'delivered', changedDaysAgo: finishedDaysAgo, attempts: 2 },
    { status: 'dead', changedDaysAgo: finishedDaysAgo, attempts: 1 },
  ],
  idempotencyKey: key,
});

/** The rows counter's value per table. */
async function prunedCounter(): Promise<Record<string, number>> {
  const { values } = await metrics.historyPruned.get();
  return Object.fromEntries(values.map((v) => [String(v.labels.table), v.value]));
}

describe('retention of finished history', () => {
  let h: Harness;
  let c: Client;
  let tenant: { id: string; api_key: string };
  const prune = (retention: Retention, bounds?: PruneBounds) => pruneHistory({ db: h.api.db, log, retention }, bounds);
  const past = (t: PastTask) => insertPastTask(c, tenant.id, t);
  const get = (id: string, path = '') => request(h.url).get(`/v1/images/generations/${id}${path}`).set(bearer(tenant.api_key));

  beforeAll(async () => {
    // No workers: the prune runs here, when the test calls it, and nothing else changes the rows.
    h = await startHarness({ workers: false });
    c = await h.pgClient();
  });
  beforeEach(async () => {
    await h.reset();
    tenant = await h.newTenant();
  });
  afterAll(() => h.close());

  it('removes a task finished before TASK_RETENTION_DAYS with all of its rows, and no task newer, in flight or with a pending delivery', async () => {
    const old = await past(finished(12, 11, 'old-key'));
    const oldFailed = await past({ state: 'failed', createdDaysAgo: 11, finishedDaysAgo: 10 });
    const inFlight = await past({ state: 'processing', createdDaysAgo: 10 });
    const retrying = await past({
      state: 'failed',
      createdDaysAgo: 10,
      finishedDaysAgo: 10,
      deliveries: [{ status: 'pending', changedDaysAgo: 10, attempts: 3 }],
    });
    const endedLate = await past(finished(9, 6));
    const recent = await past(finished(2, 1, 'recent-key'));
    const before = { inFlight: await rowsOf(c, inFlight.id), retrying: await rowsOf(c, retrying.id), recent: await rowsOf(c, recent.id) };
    const counted = await prunedCounter();

    const removed = await prune({ taskDays: 7 });

    expect(await rowsOf(c, old.id)).toEqual(NONE);
    expect(await rowsOf(c, oldFailed.id)).toEqual(NONE);
    expect(removed).toEqual({ tasks: 2, task_events: 7, webhook_deliveries: 2, webhook_attempts: 3, idempotency_keys: 1 });
    expect(await rowsOf(c, inFlight.id)).toEqual(before.inFlight);
    expect(await rowsOf(c, retrying.id)).toEqual(before.retrying);
    expect(await rowsOf(c, endedLate.id)).toEqual({ ...ALL, idempotency_keys: 0 });
    expect(await rowsOf(c, recent.id)).toEqual(before.recent);
    const now = await prunedCounter();
    for (const [table, n] of Object.entries(removed)) expect(now[table] - (counted[table] ?? 0)).toBe(n);

    // The API: a removed task is unknown (404/1203, as any missing task), a kept one answers.
    const gone = await get(old.id);
    expect(gone.status).toBe(404);
    expect(gone.body).toMatchObject({ code: 1203 });
    expect(gone.body.request_id).toEqual(expect.any(String));
    expect((await get(old.id, '/deliveries')).status).toBe(404);
    expect((await get(recent.id)).body.data.task_status).toBe('succeed');
  });

  it('removes the events of tasks finished before EVENT_RETENTION_DAYS and keeps the tasks, which still answer as before', async () => {
    const old = await past(finished(12, 11));
    const inFlight = await past({ state: 'submitted', createdDaysAgo: 10 });
    const endedLate = await past(finished(9, 6));
    const recent = await past(finished(2, 1));
    const shown = (await get(old.id)).body.data;

    expect(await prune({ eventDays: 7 })).toEqual({ task_events: 4 });

    expect(await rowsOf(c, old.id)).toEqual({ ...ALL, task_events: 0, idempotency_keys: 0 });
    expect((await rowsOf(c, inFlight.id)).task_events).toBe(2);
    expect((await rowsOf(c, endedLate.id)).task_events).toBe(4);
    expect((await rowsOf(c, recent.id)).task_events).toBe(4);
    const after = await get(old.id);
    expect(after.status).toBe(200);
    expect(after.body.data).toEqual(shown);
    expect((await get(old.id, '/deliveries')).body.data).toHaveLength(2);
  });

  it('removes finished deliveries last changed before DELIVERY_RETENTION_DAYS with their attempts, keeping the task and its pending ones', async () => {
    const old = await past({
      state: 'succeed',
      createdDaysAgo: 12,
      finishedDaysAgo: 11,
      deliveries: [
        { status: 'delivered', changedDaysAgo: 11, attempts: 2 },
        { status: 'gone', changedDaysAgo: 11, attempts: 1 },
        { status: 'dead', changedDaysAgo: 10, attempts: 4 },
        // Redelivered lately: its last change is recent.
        { status: 'delivered', changedDaysAgo: 1, attempts: 1 },
        { status: 'pending', changedDaysAgo: 10, attempts: 3 },
      ],
    });
    const inFlight = await past({
      state: 'processing',
      createdDaysAgo: 10,
      deliveries: [{ status: 'delivered', changedDaysAgo: 10, attempts: 1 }],
    });

    expect(await prune({ deliveryDays: 7 })).toEqual({ webhook_deliveries: 3, webhook_attempts: 7 });

    expect(await rowsOf(c, old.id)).toEqual({ tasks: 1, task_events: 4, webhook_deliveries: 2, webhook_attempts: 4, idempotency_keys: 0 });
    expect(await rowsOf(c, inFlight.id)).toEqual({
      tasks: 1,
      task_events: 3,
      webhook_deliveries: 1,
      webhook_attempts: 1,
      idempotency_keys: 0,
    });
    const listed = await get(old.id, '/deliveries');
    expect(listed.status).toBe(200);
    expect(listed.body.data.map((d: { webhook_id: string }) => d.webhook_id)).toEqual(old.deliveryIds.slice(3));
    // Redelivering a removed delivery: unknown (404/1203), as any missing delivery.
    const redeliver = await request(h.url)
      .post(`/v1/images/generations/${old.id}/deliveries/${old.deliveryIds[0]}/redeliver`)
      .set(bearer(tenant.api_key));
    expect(redeliver.status).toBe(404);
    expect(redeliver.body).toMatchObject({ code: 1203 });
  });

  it('removes nothing when no retention is set, however old the history', async () => {
    const rows = [await past(finished(400, 399, 'ancient')), await past({ state: 'failed', createdDaysAgo: 300, finishedDaysAgo: 300 })];
    // One query at a time: `c` is one connection.
    const rowsOfAll = async () => {
      const all = [];
      for (const r of rows) all.push(await rowsOf(c, r.id));
      return all;
    };
    const before = await rowsOfAll();
    expect(await prune({})).toEqual({});
    expect(await rowsOfAll()).toEqual(before);
  });

  it('skips rows another transaction holds instead of waiting for them, and removes them once free', async () => {
    const [a, b] = [await past(finished(12, 11)), await past(finished(12, 11))];
    const other = await h.pgClient();
    // A prune that waited for `other` would wait for ever: it fails instead.
    const url = new URL(h.config.DATABASE_URL);
    url.searchParams.set('options', '-c lock_timeout=5000');
    const db = createDb(url.toString(), 1);
    const pruneOrFail = (retention: Retention) => pruneHistory({ db, log, retention });
    try {
      await other.query('BEGIN');
      await other.query('SELECT 1 FROM webhook_deliveries WHERE id = $1 FOR UPDATE', [a.deliveryIds[0]]);
      await other.query('SELECT 1 FROM task_events WHERE task_id = $1 AND seq = 1 FOR UPDATE', [a.id]);
      expect(await pruneOrFail({ deliveryDays: 7 })).toEqual({ webhook_deliveries: 3, webhook_attempts: 4 });
      expect(await pruneOrFail({ eventDays: 7 })).toEqual({ task_events: 7 });
      // Removing a task waits for its own rows held elsewhere (the cascade): free them first.
      await other.query('ROLLBACK');
      await other.query('BEGIN');
      await other.query('SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE', [b.id]);
      expect((await pruneOrFail({ taskDays: 7 })).tasks).toBe(1);
      expect(await rowsOf(c, a.id)).toEqual(NONE);
      expect(await rowsOf(c, b.id)).toEqual({ ...NONE, tasks: 1 });
      await other.query('ROLLBACK');
      expect((await pruneOrFail({ taskDays: 7 })).tasks).toBe(1);
      expect(await rowsOf(c, b.id)).toEqual(NONE);
    } finally {
      await other.query('ROLLBACK');
      await db.$disconnect();
    }
  });

  it('removes a backlog larger than a statement across runs, at most a run of batches at a time, and nothing newer', async () => {
    const bounds = { batchSize: 2, maxBatches: 2 };
    for (let i = 0; i < 5; i++) await past({ ...finished(30 - i, 29 - i), deliveries: [] });
    const delivered = { status: 'delivered', changedDaysAgo: 19, attempts: 1 } as const;
    await past({ state: 'succeed', createdDaysAgo: 20, finishedDaysAgo: 19, deliveries: Array(5).fill(delivered) });
    const recent = await past(finished(2, 1));
    /** What each run removes of `table`, until a run removes nothing. */
    const runs = async (retention: Retention, table: string) => {
      const removed: number[] = [];
      do removed.push((await prune(retention, bounds))[table]);
      while (removed.at(-1)! > 0 && removed.length < 10);
      return removed;
    };

    // 6 tasks of 4 events each, 5 deliveries; a run removes 2 batches of 2.
    expect(await runs({ eventDays: 7 }, 'task_events')).toEqual([4, 4, 4, 4, 4, 4, 0]);
    expect(await runs({ deliveryDays: 7 }, 'webhook_deliveries')).toEqual([4, 1, 0]);
    expect(await runs({ taskDays: 7 }, 'tasks')).toEqual([4, 2, 0]);
    expect(Number((await c.query('SELECT count(*) FROM tasks')).rows[0].count)).toBe(1);
    expect(await rowsOf(c, recent.id)).toEqual({ ...ALL, idempotency_keys: 0 });
  });
});

describe('the history.prune maintenance job', () => {
  it('removes history past the configured retention', async () => {
    const h = await startHarness({ env: { TASK_RETENTION_DAYS: '7' } });
    const c = await h.pgClient();
    try {
      const tenant = await h.newTenant();
      const old = await insertPastTask(c, tenant.id, finished(12, 11));
      const recent = await insertPastTask(c, tenant.id, finished(2, 1));
      await h.api.queues.maintenance.add('history.prune', {});
      await eventually('the old task is removed', async () => (await rowsOf(c, old.id)).tasks === 0, 15_000);
      expect(await rowsOf(c, old.id)).toEqual(NONE);
      expect(await rowsOf(c, recent.id)).toEqual({ ...ALL, idempotency_keys: 0 });
    } finally {
      await h.close();
    }
  });
});
