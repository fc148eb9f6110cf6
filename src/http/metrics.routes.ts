import { Router } from 'express';
import type { Db } from '../db/client';
import { adminOnly } from './admin-auth';
import type { Queues } from '../queues/queues';
import { countTasks } from '../tasks/task-repository';
import { isTerminal } from '../tasks/task-state';
import { slotsInUse } from '../tasks/task-slots';
import { metrics, registry } from '../observability/metrics';
import { KINDS } from '../kinds/registry';
import { listAccounts } from '../accounts/account-repository';

const POOLS = [...new Set(KINDS.map((k) => k.pool))];

export interface MetricsDeps {
  db: Db;
  queues: Pick<Queues, 'all' | 'connected'>;
  adminToken?: string;
}

/** GET /metrics (Prometheus text), behind ADMIN_TOKEN. Database and queue gauges are read now. */
export function metricsRouter(deps: MetricsDeps): Router {
  const r = Router();
  r.get('/metrics', adminOnly(deps.adminToken), async (_req, res) => {
    await Promise.allSettled([refreshTaskGauges(deps.db), refreshAccountGauges(deps.db), refreshQueueGauges(deps.queues)]);
    res.set('content-type', registry.contentType).send(await registry.metrics());
  });
  return r;
}

/** From the trigger-kept counts (one statement: both gauges come from one snapshot). */
async function refreshTaskGauges(db: Db): Promise<void> {
  const counts = await countTasks(db);
  metrics.tasks.reset();
  metrics.tasksTerminal.reset();
  for (const { kind, state, reason, n } of counts) {
    metrics.tasks.inc({ kind, state }, n);
    if (isTerminal(state)) metrics.tasksTerminal.set({ kind, status: state, reason: reason || 'none' }, n);
  }
  for (const pool of POOLS) metrics.slotsInUse.set({ pool }, await slotsInUse(db, pool));
}

/** Per account and pool, read from the database now (the same for every process). */
async function refreshAccountGauges(db: Db): Promise<void> {
  const accounts = await listAccounts(db);
  for (const g of [metrics.accountSlotsInUse, metrics.accountSlotLimit, metrics.accountHealthy, metrics.accountRemainingUnits]) g.reset();
  for (const a of accounts) {
    for (const [pool, s] of Object.entries(a.slots)) {
      metrics.accountSlotsInUse.set({ account: a.name, pool }, s.in_use);
      metrics.accountSlotLimit.set({ account: a.name, pool }, s.usable);
      const health = a.health === 'ok' ? a.health_by_pool[pool] : a.health;
      metrics.accountHealthy.set({ account: a.name, pool, health }, health === 'ok' ? 1 : 0);
    }
    for (const p of a.balance ?? [])
      if (p.remaining !== null) metrics.accountRemainingUnits.set({ account: a.name, pack: p.pack }, p.remaining);
  }
}

/** For every queue of the catalogue. */
async function refreshQueueGauges(queues: MetricsDeps['queues']): Promise<void> {
  if (!queues.connected()) return;
  for (const q of queues.all) {
    const counts = await q.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized');
    for (const [state, n] of Object.entries(counts)) metrics.queueJobs.set({ queue: q.name, state }, n);
    const [oldest] = await q.getJobs(['waiting'], 0, 0, true);
    metrics.queueOldestWait.set({ queue: q.name }, oldest ? Math.max(0, (Date.now() - oldest.timestamp) / 1000) : 0);
  }
}
