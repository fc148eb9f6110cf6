import type { Client } from 'pg';
import { analyzeStaleTables } from '../../src/db/table-stats';
import { UNFINISHED_COUNT } from '../../src/tasks/task-repository';
import { slotWaitersExist } from '../../src/tasks/status-machine';
import { startHarness, type Harness } from '../helpers/harness';

/**
 * Plans of the hot-path statements on a Postgres where autovacuum does not analyze the service's
 * tables (this machine's server runs with autovacuum off; the tests also switch it off for `tasks`
 * itself, so that they hold on a server where it is on).
 */
describe('table statistics where autovacuum does not run', () => {
  let h: Harness;
  let c: Client;
  let tenantId: string;

  beforeAll(async () => {
    // No workers: their sweep would analyze too, and this test must see what its own call does.
    h = await startHarness({ workers: false });
    c = await h.pgClient();
    await c.query('ALTER TABLE tasks SET (autovacuum_enabled = false)');
  });
  afterAll(async () => {
    await c.query('ALTER TABLE tasks RESET (autovacuum_enabled)');
    await h.close();
  });

  /** Inserts tasks from this test's own connection and makes its statistics visible to the others. */
  async function insertTasks(n: number, state: (i: number) => string): Promise<void> {
    const states = Array.from({ length: n }, (_, i) => state(i));
    await c.query(
      `INSERT INTO tasks (id, tenant_id, kind, pool, request, model_name, slot_cost, callback_token, state, updated_at)
       SELECT gen_random_uuid()::text, $1, 'image-generation', 'image', '{}', 'kling-v3', 1, 'token', s::task_state, now() FROM unnest($2::text[]) s`,
      [tenantId, states],
    );
    // Statistics of a connection reach the shared ones when it goes idle, at most once a second
    // unless forced.
    await c.query('SELECT pg_stat_force_next_flush()');
  }

  /** Rows changed since the last analyze, as the service's check sees them, once they have arrived. */
  async function changedSinceAnalyze(expected: number): Promise<number> {
    let n = -1;
    for (let i = 0; i < 100 && n !== expected; i++) {
      if (i) await new Promise((r) => setTimeout(r, 50));
      const { rows } = await c.query(`SELECT n_mod_since_analyze::int AS n FROM pg_stat_user_tables WHERE relname = 'tasks'`);
      n = rows[0].n;
    }
    return n;
  }

  const reltuples = async () => Number((await c.query(`SELECT reltuples FROM pg_class WHERE relname = 'tasks'`)).rows[0].reltuples);

  /** The plan Postgres keeps for a prepared statement after its first run (a generic one). */
  async function keptPlan(name: string, params: string): Promise<string> {
    const { rows } = await c.query(`EXPLAIN EXECUTE ${name}${params}`);
    return rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n');
  }

  /** Without autovacuum_naptime's wait between two analyzes of a table (the next test has it). */
  const NOW = { minIntervalS: 0 };

  it('analyzes a table once it has changed past autovacuum threshold, and not before', async () => {
    tenantId = (await h.newTenant()).id;
    await c.query('ANALYZE tasks');
    expect(await changedSinceAnalyze(0)).toBe(0);
    const threshold = Number((await c.query(`SELECT current_setting('autovacuum_analyze_threshold') AS t`)).rows[0].t);
    const scale = Number((await c.query(`SELECT current_setting('autovacuum_analyze_scale_factor') AS s`)).rows[0].s);
    const before = await reltuples();
    const limit = threshold + scale * Math.max(before, 0);

    const under = Math.floor(limit);
    await insertTasks(under, () => 'succeed');
    expect(await changedSinceAnalyze(under)).toBe(under);
    expect(await analyzeStaleTables(h.api.db, NOW)).not.toContain('tasks');
    expect(await reltuples()).toBe(before);

    await insertTasks(2, () => 'succeed');
    expect(await changedSinceAnalyze(under + 2)).toBe(under + 2);
    expect(await analyzeStaleTables(h.api.db, NOW)).toContain('tasks');
    expect(await reltuples()).toBe(Math.max(before, 0) + under + 2);
    expect(await changedSinceAnalyze(0)).toBe(0);
    expect(await analyzeStaleTables(h.api.db, NOW)).not.toContain('tasks');
  });

  it('makes statements prepared on empty tables plan through the partial indexes once analyzed', async () => {
    await h.reset();
    tenantId = (await h.newTenant()).id;
    await c.query('ANALYZE tasks');
    await c.query(`SET plan_cache_mode = force_generic_plan`);
    try {
      // Prepared and planned while the table is empty, as after a deployment on a new database.
      await c.query(`PREPARE waiters(text) AS SELECT ${slotWaitersExist('$1')}`);
      await c.query(`PREPARE unfinished(text, int) AS ${UNFINISHED_COUNT}`);
      const emptyWaiters = await keptPlan('waiters', `('image')`);
      const emptyUnfinished = await keptPlan('unfinished', `('${tenantId}', 1000)`);

      // A history of ended tasks and a few in flight, none waiting for slots.
      await insertTasks(3000, (i) => (i % 20 === 0 ? 'queued' : i % 20 === 1 ? 'processing' : 'succeed'));
      // Without statistics Postgres keeps the plans it made on the empty table.
      expect(await keptPlan('waiters', `('image')`)).toBe(emptyWaiters);
      expect(await keptPlan('unfinished', `('${tenantId}', 1000)`)).toBe(emptyUnfinished);

      expect(await changedSinceAnalyze(3000)).toBe(3000);
      expect(await analyzeStaleTables(h.api.db)).toContain('tasks');
      // The analyze invalidated them: planned again, with statistics, they read only the tasks they ask for.
      expect(await keptPlan('waiters', `('image')`)).toMatch(/Index (Only )?Scan using tasks_waiting_for_slots_idx/);
      expect(await keptPlan('unfinished', `('${tenantId}', 1000)`)).toMatch(/Index (Only )?Scan using tasks_unfinished_idx/);
      expect(emptyWaiters).not.toMatch(/tasks_waiting_for_slots_idx/);
    } finally {
      await c.query('DEALLOCATE ALL');
      await c.query('RESET plan_cache_mode');
    }
  });

  it('analyzes a table whose rows changed but did not grow at most once per autovacuum_naptime, as autovacuum would', async () => {
    await h.reset();
    tenantId = (await h.newTenant()).id;
    await insertTasks(1000, () => 'succeed');
    expect(await changedSinceAnalyze(1000)).toBe(1000);
    // Grown from nothing: analyzed at once.
    expect(await analyzeStaleTables(h.api.db)).toContain('tasks');
    expect(await reltuples()).toBe(1000);

    // Every row changes again, well past the threshold (50 + 10% of 1000), and the table keeps its size.
    await c.query(`UPDATE tasks SET updated_at = now()`);
    await c.query('SELECT pg_stat_force_next_flush()');
    expect(await changedSinceAnalyze(1000)).toBe(1000);
    expect(await analyzeStaleTables(h.api.db)).not.toContain('tasks');
    expect(await changedSinceAnalyze(1000)).toBe(1000);
    // Once the wait is over (none here), it is analyzed.
    expect(await analyzeStaleTables(h.api.db, NOW)).toContain('tasks');
    expect(await changedSinceAnalyze(0)).toBe(0);

    // Doubled within the wait: analyzed at once.
    await insertTasks(1100, () => 'succeed');
    expect(await changedSinceAnalyze(1100)).toBe(1100);
    expect(await analyzeStaleTables(h.api.db)).toContain('tasks');
  });
});
