import type { Client } from 'pg';
import { imageGeneration } from '../../src/kinds/image-generation';
import { LIST_LATER_PAGE, listTasks } from '../../src/tasks/task-repository';
import { startHarness, type Harness } from '../helpers/harness';

/**
 * Kling pages a tenant's list by number: a deep page must still be the right tasks, and skipping the
 * tasks before it must not read a table row for each of them (it would grow with the history kept).
 */
describe("a tenant's task list, page by page", () => {
  let h: Harness;
  let c: Client;
  let alice: string;

  /** `n` finished tasks of a tenant and kind, a second apart, every third sharing its created_at with the one before. */
  async function insertTasks(tenantId: string, kind: string, n: number): Promise<void> {
    await c.query(
      `INSERT INTO tasks (id, tenant_id, kind, pool, request, model_name, slot_cost, state, event_seq, created_at, updated_at)
       SELECT gen_random_uuid()::text, $1, $2, 'image', '{}', 'kling-v3', 1, 'succeed', 4, t, t
       FROM generate_series(1, $3::int) i, LATERAL (SELECT timestamp '2026-01-01' + (i - i % 3 / 2) * interval '1 second' AS t) x`,
      [tenantId, kind, n],
    );
  }

  beforeAll(async () => {
    h = await startHarness({ workers: false });
    c = await h.pgClient();
    alice = (await h.newTenant('alice')).id;
    const bob = (await h.newTenant('bob')).id;
    await insertTasks(alice, 'image-generation', 6000);
    await insertTasks(alice, 'text-to-video', 500);
    await insertTasks(bob, 'image-generation', 500);
    // As a table long in service is: vacuumed (its pages all-visible) and analyzed.
    await c.query('VACUUM (ANALYZE) tasks');
  });
  afterAll(() => h.close());

  it("tiles the tenant's tasks of the kind, newest first, ties on created_at broken by the larger id, and ends empty", async () => {
    const { rows } = await c.query(
      `SELECT id FROM tasks WHERE tenant_id = $1 AND kind = 'image-generation' ORDER BY created_at DESC, id DESC`,
      [alice],
    );
    const pages: string[][] = [];
    for (let n = 1; n <= 13; n++) pages.push((await listTasks(h.api.db, alice, imageGeneration, n, 500)).map((t) => t.id));
    expect(pages.slice(0, 12).map((p) => p.length)).toEqual(Array(12).fill(500));
    expect(pages[12]).toEqual([]);
    expect(pages.flat()).toEqual(rows.map((r) => r.id));
    const deep = await listTasks(h.api.db, alice, imageGeneration, 7, 30);
    expect(deep.map((t) => t.id)).toEqual(rows.slice(180, 210).map((r) => r.id));
    expect(deep[0]).toMatchObject({ tenantId: alice, kind: 'image-generation', state: 'succeed', slotCost: 1, request: {} });
    expect(deep[0].createdAt).toBeInstanceOf(Date);
  });

  /** Every node of a JSON plan, flattened. */
  type PlanNode = { 'Node Type': string; 'Index Name'?: string; 'Actual Rows': number; 'Heap Fetches'?: number; Plans?: PlanNode[] };
  const nodes = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(nodes)];

  it('skips the tasks before a deep page in the index alone, and reads table rows only for the page', async () => {
    await c.query(`PREPARE later_page(text, text, int, int) AS ${LIST_LATER_PAGE}`);
    try {
      const { rows } = await c.query(`EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE later_page('${alice}', 'image-generation', 4500, 30)`);
      const plan = nodes(rows[0]['QUERY PLAN'][0].Plan);
      const skipping = plan.filter((n) => n['Actual Rows'] >= 4500);
      expect(skipping.map((n) => [n['Node Type'], n['Index Name'], n['Heap Fetches']])).toEqual([
        ['Index Only Scan', 'tasks_tenant_id_kind_created_at_id_idx', 0],
      ]);
      const tableReads = plan.filter((n) => /^(Index Scan|Seq Scan|Bitmap Heap Scan)$/.test(n['Node Type']));
      expect(tableReads.length).toBeGreaterThan(0);
      for (const n of tableReads) expect(n['Actual Rows']).toBeLessThanOrEqual(30);
    } finally {
      await c.query('DEALLOCATE later_page');
    }
  });
});
