import { randomUUID } from 'node:crypto';
import type { Client } from 'pg';
import request from 'supertest';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';

const ADMIN = 'admin-token-for-tests-0123456789';
const STATES = ['queued', 'submitted', 'processing', 'storing', 'succeed', 'failed'] as const;
const REASONS = [null, 'upstream_failed', 'timed_out', 'canceled'] as const;

type Count = { kind: string; state: string; reason: string; n: number };

/** What task_counts says, every key with tasks (finished ones only: the unfinished are counted at each scrape). */
async function counted(c: Client): Promise<Count[]> {
  const { rows } = await c.query<Count>(
    `SELECT kind, state::text, reason, sum(n)::int AS n FROM task_counts GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3`,
  );
  return rows;
}

/** The same, counted from the finished tasks themselves. */
async function actual(c: Client): Promise<Count[]> {
  const { rows } = await c.query<Count>(
    `SELECT kind, state::text, coalesce(failure_reason, '') AS reason, count(*)::int AS n FROM tasks
     WHERE state IN ('succeed', 'failed') GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
  );
  return rows;
}

/** Writes `n` tasks of the tenant in one statement; returns their ids. */
async function insertTasks(c: Client, tenantId: string, n: number, kind: string, state: string, reason: string | null = null) {
  const ids = Array.from({ length: n }, () => randomUUID());
  await c.query(
    `INSERT INTO tasks (id, tenant_id, kind, pool, request, model_name, slot_cost, state, failure_reason, created_at, updated_at)
     SELECT id, $2, $3, 'image', '{"prompt":"x"}', 'kling-v3', 1, $4::task_state, $5, now(), now() FROM unnest($1::text[]) AS id`,
    [ids, tenantId, kind, state, reason],
  );
  return ids;
}

/** One Prometheus sample's value, or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && want.every((w) => l.includes(w)));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

describe('finished-task counts kept by triggers, unfinished counted at each scrape (kt_tasks, kt_tasks_terminal)', () => {
  let h: Harness;
  let c: Client;
  let tenant: { id: string; api_key: string };

  beforeAll(async () => {
    // No workers: only the test changes tasks.
    h = await startHarness({ workers: false, env: { ADMIN_TOKEN: ADMIN } });
    c = await h.pgClient();
  });
  beforeEach(async () => {
    await h.reset();
    tenant = await h.newTenant();
  });
  afterAll(() => h.close());

  it('follows every insert, change of kind, state or reason, and delete, in one row or many', async () => {
    const created = await request(h.url).post('/v1/images/generations').set(bearer(tenant.api_key)).send({ prompt: 'a lighthouse' });
    expect(created.status).toBe(200);
    const queued = await insertTasks(c, tenant.id, 5, 'image-generation', 'queued');
    const failed = await insertTasks(c, tenant.id, 3, 'text-to-video', 'failed', 'upstream_failed');
    // Only finished tasks are kept in the counts: the queued ones are not there.
    expect(await counted(c)).toEqual([{ kind: 'text-to-video', state: 'failed', reason: 'upstream_failed', n: 3 }]);

    await c.query(`UPDATE tasks SET state = 'submitted' WHERE id = $1`, [queued[0]]);
    await c.query(`UPDATE tasks SET state = 'failed', failure_reason = 'canceled' WHERE id = ANY($1)`, [queued.slice(1, 3)]);
    await c.query(`UPDATE tasks SET failure_reason = 'timed_out' WHERE id = $1`, [failed[0]]);
    await c.query(`UPDATE tasks SET kind = 'image-to-video' WHERE id = $1`, [failed[1]]);
    // Neither a change of another column nor one from no reason to '' moves a task.
    await c.query(`UPDATE tasks SET status_msg = 'x', updated_at = now() WHERE id = ANY($1)`, [queued]);
    await c.query(`UPDATE tasks SET failure_reason = '' WHERE id = $1`, [queued[3]]);
    await c.query(`DELETE FROM tasks WHERE id = ANY($1)`, [[queued[4], failed[2]]]);
    expect(await counted(c)).toEqual(await actual(c));
    expect(await counted(c)).toEqual([
      { kind: 'image-generation', state: 'failed', reason: 'canceled', n: 2 },
      { kind: 'image-to-video', state: 'failed', reason: 'upstream_failed', n: 1 },
      { kind: 'text-to-video', state: 'failed', reason: 'timed_out', n: 1 },
    ]);
    // A finished task moved back by another writer leaves its key.
    await c.query(`UPDATE tasks SET state = 'processing', failure_reason = NULL WHERE id = $1`, [queued[1]]);
    expect(await counted(c)).toEqual(await actual(c));
    expect(await counted(c)).toContainEqual({ kind: 'image-generation', state: 'failed', reason: 'canceled', n: 1 });

    // A rolled-back change counts for nothing.
    await c.query('BEGIN');
    await c.query(`UPDATE tasks SET state = 'succeed' WHERE id = ANY($1)`, [queued]);
    await c.query('ROLLBACK');
    expect(await counted(c)).toEqual(await actual(c));
  });

  it('answers /metrics from the counts, which agree with the tasks', async () => {
    await insertTasks(c, tenant.id, 4, 'image-generation', 'succeed');
    await insertTasks(c, tenant.id, 2, 'image-generation', 'failed', 'upstream_failed');
    await insertTasks(c, tenant.id, 1, 'image-generation', 'failed');
    await insertTasks(c, tenant.id, 3, 'text-to-video', 'processing');
    await insertTasks(c, tenant.id, 2, 'image-generation', 'storing');
    const text = (await request(h.url).get('/metrics').set(bearer(ADMIN))).text;
    expect(sample(text, 'kt_tasks', { kind: 'image-generation', state: 'succeed' })).toBe(4);
    expect(sample(text, 'kt_tasks', { kind: 'image-generation', state: 'failed' })).toBe(3);
    expect(sample(text, 'kt_tasks', { kind: 'text-to-video', state: 'processing' })).toBe(3);
    expect(sample(text, 'kt_tasks', { kind: 'image-generation', state: 'storing' })).toBe(2);
    expect(sample(text, 'kt_tasks', { kind: 'text-to-video', state: 'queued' })).toBeUndefined();
    expect(sample(text, 'kt_tasks_terminal', { kind: 'image-generation', status: 'failed', reason: 'upstream_failed' })).toBe(2);
    expect(sample(text, 'kt_tasks_terminal', { kind: 'image-generation', status: 'failed', reason: 'none' })).toBe(1);
    expect(sample(text, 'kt_tasks_terminal', { kind: 'image-generation', status: 'succeed', reason: 'none' })).toBe(4);
    expect(sample(text, 'kt_tasks_terminal', { kind: 'text-to-video', status: 'processing' })).toBeUndefined();

    await c.query(`DELETE FROM tasks WHERE state = 'succeed'`);
    await c.query(`UPDATE tasks SET state = 'succeed' WHERE state = 'storing'`);
    const after = (await request(h.url).get('/metrics').set(bearer(ADMIN))).text;
    expect(sample(after, 'kt_tasks', { kind: 'image-generation', state: 'succeed' })).toBe(2);
    expect(sample(after, 'kt_tasks', { kind: 'image-generation', state: 'storing' })).toBeUndefined();
    expect(sample(after, 'kt_tasks', { kind: 'image-generation', state: 'failed' })).toBe(3);
  });

  it('stays exact under many concurrent transactions that change tasks in different orders, none failing', async () => {
    const WRITERS = 16;
    const ROUNDS = 15;
    const own: string[][] = [];
    for (let i = 0; i < WRITERS; i++) own.push(await insertTasks(c, tenant.id, 6, 'image-generation', 'queued'));
    const clients = await Promise.all(own.map(() => h.pgClient()));
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(Math.random() * xs.length)];
    const errors: unknown[] = [];
    await Promise.all(
      clients.map(async (w, i) => {
        for (let round = 0; round < ROUNDS; round++) {
          // Each writer's own tasks (so the tasks' rows never conflict), one statement each, in a
          // random order, to random states: with one shared counter row per key these
          // transactions would lock the keys in opposite orders and deadlock.
          const ids = [...own[i]].sort(() => Math.random() - 0.5);
          try {
            await w.query('BEGIN');
            for (const id of ids)
              await w.query(`UPDATE tasks SET state = $2::task_state, failure_reason = $3 WHERE id = $1`, [
                id,
                pick(STATES),
                pick(REASONS),
              ]);
            await w.query(round % 5 === 4 ? 'ROLLBACK' : 'COMMIT');
          } catch (err) {
            errors.push(err);
            await w.query('ROLLBACK');
          }
        }
      }),
    );
    expect(errors).toEqual([]);
    expect(await counted(c)).toEqual(await actual(c));
    // The gauges, finished and unfinished together, account for every task.
    const text = (await request(h.url).get('/metrics').set(bearer(ADMIN))).text;
    const total = STATES.reduce((sum, state) => sum + (sample(text, 'kt_tasks', { kind: 'image-generation', state }) ?? 0), 0);
    expect(total).toBe(WRITERS * 6);
  });

  it('empties with TRUNCATE, and counts again with recount_tasks() after a load made with triggers off', async () => {
    await insertTasks(c, tenant.id, 3, 'image-generation', 'succeed');
    await c.query('TRUNCATE tasks CASCADE');
    expect(await counted(c)).toEqual([]);

    await insertTasks(c, tenant.id, 2, 'image-generation', 'succeed');
    await c.query('SET session_replication_role = replica');
    try {
      await insertTasks(c, tenant.id, 7, 'image-generation', 'failed', 'timed_out');
    } finally {
      await c.query('SET session_replication_role = DEFAULT');
    }
    expect(await counted(c)).toEqual([{ kind: 'image-generation', state: 'succeed', reason: '', n: 2 }]);
    await c.query('SELECT recount_tasks()');
    expect(await counted(c)).toEqual(await actual(c));
    expect(await counted(c)).toHaveLength(2);
  });
});
