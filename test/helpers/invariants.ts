import type { Db } from '../../src/db/client';
import type { KlingSimulator } from '../../src/simulator/kling-simulator';
import type { MaintenanceJobName } from '../../src/queues/catalogue';
import { slotsInUse } from '../../src/tasks/task-slots';
import type { Harness } from './harness';
import type { Receiver } from './receiver';

const RANK: Record<string, number> = { submitted: 1, processing: 2, succeed: 3, failed: 3 };

/** The upstream's lookups of our task `id` by its external_task_id: in the path (`.../{id}`), or in the query. */
export function lookupsByExternalId(sim: KlingSimulator, id: string): number {
  return sim.received.filter((r) => r.method === 'GET' && (r.path.endsWith(`/${id}`) || r.query.external_task_id === id)).length;
}

/** Polls `check` until it returns true (bounded; throws with `what` when it never does). */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Resolves once nothing is left that could still send a webhook: the inline sends in flight in the
 * harness's processes have ended, a sweep of due deliveries that started after this call has
 * finished, and the deliver queue holds no job. Checking that no further webhook arrived is
 * meaningful after this.
 */
export async function nothingLeftToSend(h: Harness): Promise<void> {
  const since = Date.now();
  await Promise.all([h.api, h.worker].map((s) => s?.store.inline?.drain()));
  await maintenanceRanSince(h, 'deliveries.requeue', since);
  await eventually(
    'no delivery job left',
    async () => Object.values(await h.api.queues.deliver.getJobCounts('waiting', 'active', 'delayed', 'prioritized')).every((n) => n === 0),
    15_000,
  );
}

/** Resolves once a run of the maintenance job `job` that started at or after `since` has finished. */
export async function maintenanceRanSince(h: Harness, job: MaintenanceJobName, since: number): Promise<void> {
  await eventually(
    `a run of ${job}`,
    async () => (await h.api.queues.maintenance.getJobs(['completed'], 0, 20)).some((j) => j.name === job && (j.processedOn ?? 0) >= since),
    15_000,
  );
}

/** The slots the tasks themselves hold (the truth the slot counter must equal). */
export async function slotsHeldByTasks(db: Db): Promise<number> {
  const { rows } = await db.sql<{ held: number }>('SELECT coalesce(sum(slots_held), 0)::int AS held FROM tasks');
  return rows[0].held;
}

/**
 * The promise of the service, checked after a fault: every task ended, in the state the upstream
 * says, with exactly one upstream task, of its own kind; no slot held in any pool; and, with a
 * receiver, every webhook delivered once per event (retries share a webhook-id) and in order.
 */
export async function expectAllSettled(h: Harness, ids: string[], rx?: Receiver): Promise<void> {
  const db = h.api.db;
  await eventually(
    'every task terminal',
    async () => (await db.task.count({ where: { id: { in: ids }, state: { in: ['succeed', 'failed'] } } })) === ids.length,
  );
  await h.sim.settle();
  const upstream = [...h.sim.tasks.values()];
  for (const t of await db.task.findMany({ where: { id: { in: ids } } })) {
    const mine = upstream.filter((u) => u.external_task_id === t.id);
    expect({ task: t.id, upstreamTasks: mine.length }).toEqual({ task: t.id, upstreamTasks: 1 });
    expect({ task: t.id, state: t.state, upstreamTaskId: t.upstreamTaskId, kind: t.kind }).toEqual({
      task: t.id,
      state: mine[0].status,
      upstreamTaskId: mine[0].task_id,
      kind: mine[0].kind,
    });
  }
  expect({ counter: await slotsInUse(db), tasks: await slotsHeldByTasks(db) }).toEqual({ counter: 0, tasks: 0 });
  if (!rx) return;
  await eventually(
    'every webhook delivered',
    async () => (await db.webhookDelivery.count({ where: { taskId: { in: ids }, status: { not: 'delivered' } } })) === 0,
  );
  const deliveries = await db.webhookDelivery.findMany({ where: { taskId: { in: ids } } });
  for (const id of ids) {
    const seen = new Set<string>();
    const statuses: string[] = [];
    for (const r of rx.received.filter((x) => x.json.task_id === id)) {
      const wid = String(r.headers['webhook-id']);
      if (seen.has(wid)) continue;
      seen.add(wid);
      statuses.push(String(r.json.task_status));
    }
    const expected = deliveries.filter((d) => d.taskId === id).length;
    expect({ task: id, events: seen.size }).toEqual({ task: id, events: expected });
    for (let i = 1; i < statuses.length; i++) expect(RANK[statuses[i]]).toBeGreaterThan(RANK[statuses[i - 1]]);
  }
}
