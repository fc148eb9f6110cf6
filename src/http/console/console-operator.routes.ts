import { Router } from 'express';
import { z } from 'zod';
import type { Db } from '../../db/client';
import { AppError, envelope, invalidParameter } from '../../errors';
import type { Queues } from '../../queues/queues';
import { DASHBOARD_PATH } from '../queue-dashboard';
import { pathId, IdParam } from '../request-input';
import { redeliverNow, type RedeliverDeps } from '../tasks.routes';
import { listAccounts, setAccountEnabled, type AccountsDeps } from './accounts-view';

export interface OperatorDeps extends RedeliverDeps, AccountsDeps {
  db: Db;
  queues: Queues;
}

/** Dead deliveries listed (newest first) and redelivered in one call at most. */
const MAX_DEAD_SHOWN = 100;
/** Tenants listed, busiest first. */
const MAX_TENANTS_SHOWN = 200;

const BulkRedeliver = z.object({
  webhook_ids: z.array(IdParam, { error: 'must be an array of webhook ids' }).min(1, 'must name at least one delivery').max(MAX_DEAD_SHOWN),
});

/** The operator's side of the console API (signed in with ADMIN_TOKEN). */
export function consoleOperatorRouter(deps: OperatorDeps): Router {
  const r = Router();
  r.use((_req, res, next) => {
    if (res.locals.console.session.role !== 'operator')
      throw new AppError('not_found', 'no such page: the operator view needs ADMIN_TOKEN');
    next();
  });

  r.get('/overview', async (_req, res) => {
    const [accounts, queues, failures, tenants, dead] = await Promise.all([
      listAccounts(deps),
      queueCounts(deps.queues),
      failuresOfLastDay(deps.db),
      tenantUsage(deps.db),
      deadDeliveries(deps.db),
    ]);
    res.json(
      envelope(res.locals.requestId, { accounts, queues, queue_dashboard: DASHBOARD_PATH, failures, tenants, dead_deliveries: dead }),
    );
  });

  r.post('/accounts/:id/:action', async (req, res) => {
    const action = req.params.action;
    if (action !== 'enable' && action !== 'disable') throw invalidParameter('action: must be enable or disable');
    res.json(envelope(res.locals.requestId, await setAccountEnabled(deps, pathId(req, 'id'), action === 'enable')));
  });

  r.post('/deliveries/redeliver', async (req, res) => {
    const parsed = BulkRedeliver.safeParse(req.body);
    if (!parsed.success) throw invalidParameter(`webhook_ids: ${parsed.error.issues[0].message}`);
    const rows = await deps.db.webhookDelivery.findMany({
      where: { id: { in: parsed.data.webhook_ids } },
      select: { id: true, taskId: true },
    });
    const results = [];
    for (const d of rows) {
      try {
        await redeliverNow(deps, d.taskId, d.id);
        results.push({ webhook_id: d.id, ok: true });
      } catch (err) {
        results.push({ webhook_id: d.id, ok: false, message: err instanceof AppError ? err.message : 'failed' });
      }
    }
    res.json(envelope(res.locals.requestId, results));
  });

  return r;
}

/** Each queue's jobs by state, and how long its oldest waiting job has waited. */
async function queueCounts(queues: Queues) {
  return Promise.all(
    queues.all.map(async (q) => {
      const counts = await q.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed');
      const [oldest] = await q.getJobs(['wait', 'prioritized'], 0, 0, true);
      return {
        name: q.name,
        waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
        active: counts.active ?? 0,
        delayed: counts.delayed ?? 0,
        failed: counts.failed ?? 0,
        oldest_waiting_at: oldest?.timestamp ?? null,
      };
    }),
  );
}

/** Why tasks failed in the last 24 hours, most frequent first (through the index on state, created_at). */
async function failuresOfLastDay(db: Db) {
  const { rows } = await db.sql<{ reason: string | null; message: string | null; count: number }>(
    `SELECT failure_reason AS reason, left(status_msg, 200) AS message, count(*)::int AS count FROM tasks
     WHERE state = 'failed' AND created_at > now() AT TIME ZONE 'UTC' - interval '1 day'
     GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 50`,
  );
  return rows;
}

/** Tenants with their tasks of the last 30 days by status and the upstream slots those used. */
async function tenantUsage(db: Db) {
  const { rows } = await db.sql<{
    id: string;
    name: string;
    api_key_prefix: string;
    revoked: boolean;
    tasks: number;
    unfinished: number;
    succeeded: number;
    failed: number;
    slots_used: number;
  }>(
    `SELECT t.id, t.name, t.api_key_prefix, t.revoked_at IS NOT NULL AS revoked,
       coalesce(u.tasks, 0)::int AS tasks, coalesce(u.unfinished, 0)::int AS unfinished, coalesce(u.succeeded, 0)::int AS succeeded,
       coalesce(u.failed, 0)::int AS failed, coalesce(u.slots_used, 0)::int AS slots_used
     FROM tenants t LEFT JOIN (
       SELECT tenant_id, count(*) AS tasks, count(*) FILTER (WHERE state IN ('queued', 'submitted', 'processing')) AS unfinished,
         count(*) FILTER (WHERE state = 'succeed') AS succeeded, count(*) FILTER (WHERE state = 'failed') AS failed,
         sum(slot_cost) FILTER (WHERE state = 'succeed') AS slots_used
       FROM tasks WHERE created_at > now() AT TIME ZONE 'UTC' - interval '30 days' GROUP BY tenant_id
     ) u ON u.tenant_id = t.id
     ORDER BY tasks DESC, t.created_at LIMIT $1`,
    [MAX_TENANTS_SHOWN],
  );
  return rows;
}

/** Deliveries whose every attempt failed, newest first (through the index on status). */
async function deadDeliveries(db: Db) {
  const rows = await db.webhookDelivery.findMany({
    where: { status: 'dead' },
    orderBy: { updatedAt: 'desc' },
    take: MAX_DEAD_SHOWN,
    select: { id: true, taskId: true, tenantId: true, eventType: true, url: true, attemptCount: true, lastError: true, updatedAt: true },
  });
  return rows.map((d) => ({
    webhook_id: d.id,
    task_id: d.taskId,
    tenant_id: d.tenantId,
    event_type: d.eventType,
    url: d.url,
    attempt_count: d.attemptCount,
    last_error: d.lastError,
    updated_at: d.updatedAt.getTime(),
  }));
}
