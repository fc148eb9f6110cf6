import type { Client } from 'pg';
import request from 'supertest';
import { fillOldPages, insertHistory, vacuumAnalyze } from '../../scripts/bench/history-seed';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';

const DAY_MS = 86_400_000;

/**
 * The benchmark's history (`npm run bench -- --history`) must leave old pages as a table filled row
 * by row leaves them: a bulk load keeps room at the end of nearly every page, into which each new
 * task would go (a page of months ago per create), and the seed fills it.
 */
describe('the benchmark seed of a kept history', () => {
  let h: Harness;
  let c: Client;
  beforeAll(async () => {
    h = await startHarness({ workers: false });
    c = await h.pgClient();
  });
  afterAll(() => h.close());

  const pages = async (table: string) =>
    Number((await c.query(`SELECT pg_relation_size($1) / current_setting('block_size')::int AS n`, [table])).rows[0].n);

  /** Creates tasks through the API; returns the page of each one's row and of its first event. */
  async function create(key: string, n: number): Promise<{ task: number; event: number }[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const res = await request(h.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'a lighthouse at dawn' });
      expect(res.status).toBe(200);
      ids.push(res.body.data.task_id);
    }
    const { rows } = await c.query<{ task: number; event: number }>(
      `SELECT (t.ctid::text::point)[0]::int AS task, (e.ctid::text::point)[0]::int AS event
       FROM tasks t JOIN task_events e ON e.task_id = t.id AND e.seq = 1 WHERE t.id = ANY($1)`,
      [ids],
    );
    return rows;
  }

  it('fills the room a bulk load leaves in old pages, so that new tasks and their events go into new pages', async () => {
    const tenant = await h.newTenant();
    const span = { tenantIds: [tenant.id], from: new Date(Date.now() - 30 * DAY_MS), to: new Date(Date.now() - DAY_MS) };
    await insertHistory(h.config.DATABASE_URL, { ...span, tasks: 3000 });
    await vacuumAnalyze(h.config.DATABASE_URL);

    // As loaded: new rows find room in old pages (the last page aside: any table's new rows go there).
    const old = { tasks: (await pages('tasks')) - 1, events: (await pages('task_events')) - 1 };
    const asLoaded = await create(tenant.api_key, 10);
    expect(asLoaded.filter((r) => r.task < old.tasks).length).toBeGreaterThan(0);
    expect(asLoaded.filter((r) => r.event < old.events).length).toBeGreaterThan(0);

    expect(await fillOldPages(h.config.DATABASE_URL, span)).toBeGreaterThan(0);
    await vacuumAnalyze(h.config.DATABASE_URL);
    const filled = await create(tenant.api_key, 10);
    expect(filled).toHaveLength(10);
    expect(filled.filter((r) => r.task < old.tasks)).toEqual([]);
    expect(filled.filter((r) => r.event < old.events)).toEqual([]);
  });
});
