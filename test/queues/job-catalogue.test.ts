import { randomUUID } from 'node:crypto';
import express from 'express';
import request from 'supertest';
import { z } from 'zod';
import { loadConfig } from '../../src/config';
import { metricsRouter } from '../../src/http/metrics.routes';
import { queueDashboardRouter } from '../../src/http/queue-dashboard';
import { createLogger } from '../../src/logger';
import { CATALOGUE, type Catalogue, type Handlers, type MaintenanceJobName, type WorkerSettings } from '../../src/queues/catalogue';
import { createQueues, submitJobId } from '../../src/queues/queues';
import { createProducerConnection } from '../../src/queues/redis-connections';
import { startCatalogueWorkers } from '../../workers/catalogue-workers';
import { keepJobsScheduled } from '../../workers/job-schedulers';
import { bearer, insertQueuedTask } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { eventually } from '../helpers/invariants';

const ADMIN = 'admin-token-for-tests-0123456789';
const log = createLogger('silent');
const REDIS = { url: loadConfig({ DATABASE_URL: 'postgresql://unused' }).REDIS_URL, cluster: false };

/** The distinct `queue` labels of one Prometheus metric. */
function queueLabels(text: string, metric: string): string[] {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${metric}\\{[^}]*queue="([^"]+)"`).exec(line);
    if (m) names.add(m[1]);
  }
  return [...names].sort();
}

/** What the dashboard lists, and what the queue gauges are about, as an operator reads them. */
async function dashboardAndMetrics(url: string): Promise<{ dashboard: string[]; jobs: string[]; oldest: string[] }> {
  const board = await request(url).get('/admin/queues/api/queues').auth('admin', ADMIN);
  const metrics = (await request(url).get('/metrics').set(bearer(ADMIN))).text;
  return {
    dashboard: board.body.queues.map((q: { name: string }) => q.name).sort(),
    jobs: queueLabels(metrics, 'kt_queue_jobs'),
    oldest: queueLabels(metrics, 'kt_queue_oldest_waiting_seconds'),
  };
}

const namesOf = (c: Catalogue) => Object.values(c).map((q) => q.name);

/** Short intervals; the idempotency TTL of 1 ms makes forgetting keys run at its floor, once a second. */
const SETTINGS: WorkerSettings = { concurrency: 1, lockMs: 30_000, sweepIntervalMs: 100, reconcileIntervalMs: 150, idempotencyTtlMs: 1 };

/** Queues of a catalogue under a prefix of their own, on a connection of their own. */
function testQueues<C extends Catalogue>(catalogue: C) {
  const redis = createProducerConnection(REDIS);
  const queues = createQueues(redis, { prefix: `kt-test-${randomUUID().slice(0, 8)}`, submitAttempts: 1, submitBackoffMs: 10 }, catalogue);
  return Object.assign(queues, {
    async dispose() {
      for (const q of queues.all) await q.obliterate({ force: true }).catch(() => undefined);
      await queues.close();
      await redis.quit();
    },
  });
}

/** Handlers for a catalogue's jobs that no test here expects to run: each one that does is recorded. */
function unexpectedHandlers<C extends Catalogue>(c: C, ran: string[]): Handlers<C> {
  const entries = Object.entries(c).map(([key, q]) => [
    key,
    Object.fromEntries(Object.keys(q.jobs).map((job) => [job, async () => void ran.push(`${q.name} ${job}`)])),
  ]);
  return Object.fromEntries(entries) as Handlers<C>;
}

describe('the job catalogue', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ env: { ADMIN_TOKEN: ADMIN } });
  });
  afterAll(async () => h?.close());

  it('gives every queue of the catalogue a worker, a dashboard entry and queue metrics, and nothing else any', async () => {
    const names = namesOf(CATALOGUE).sort();
    expect(names).toEqual(['result.store', 'task.maintenance', 'task.submit', 'webhook.deliver']);
    expect(h.worker!.workers!.workers.map((w) => w.name).sort()).toEqual(names);
    expect(await dashboardAndMetrics(h.url)).toEqual({ dashboard: names, jobs: names, oldest: names });
  });

  it('gives a queue added to the catalogue a worker, a dashboard entry and queue metrics, and its handler the parsed payload', async () => {
    const catalogue = {
      ...CATALOGUE,
      extra: {
        name: 'test.extra',
        jobOptions: () => ({ attempts: 1 }),
        worker: () => ({ concurrency: 1 }),
        jobs: { echo: { payload: z.object({ thingId: z.uuid() }) } },
      },
    } satisfies Catalogue;
    const queues = testQueues(catalogue);
    const unexpected: string[] = [];
    const echoed: unknown[] = [];
    const handlers = {
      ...unexpectedHandlers(CATALOGUE, unexpected),
      extra: { echo: async (p: { thingId: string }) => void echoed.push(p) },
    };
    const workers = startCatalogueWorkers(queues, handlers, { redisTarget: REDIS, settings: SETTINGS, log });
    const app = express()
      .use(queueDashboardRouter(queues, ADMIN))
      .use(metricsRouter({ db: h.api.db, queues, adminToken: ADMIN }));
    try {
      const names = namesOf(catalogue).sort();
      expect(names).toContain('test.extra');
      expect(workers.all.map((w) => w.name).sort()).toEqual(names);
      const server = app.listen(0, '127.0.0.1');
      try {
        await new Promise((r) => server.once('listening', r));
        const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
        expect(await dashboardAndMetrics(url)).toEqual({ dashboard: names, jobs: names, oldest: names });
      } finally {
        server.close();
      }

      const thingId = randomUUID();
      // Only the parsed payload reaches the handler: what the schema does not name is left out.
      await queues.extra.add('echo', { thingId, note: 'not in the schema' });
      const refused = await queues.extra.add('echo', { thingId: 'not-a-uuid' });
      const unknown = await queues.extra.add('shout', { thingId });
      await eventually('the two refused jobs failed', async () => (await queues.extra.getJobCounts('failed')).failed === 2, 10_000);
      await eventually('the echo completed', async () => echoed.length === 1, 10_000);
      expect(echoed).toEqual([{ thingId }]);
      expect((await queues.extra.getJob(refused.id!))?.failedReason).toMatch(/^test\.extra echo: payload refused/);
      expect((await queues.extra.getJob(unknown.id!))?.failedReason).toBe('test.extra: no job named "shout" in the catalogue');
      expect(unexpected).toEqual([]);
    } finally {
      await workers.close();
      await queues.dispose();
    }
  });
});

describe('maintenance duties', () => {
  it('each run from a job scheduler of their own: one that fails or hangs does not stop the others', async () => {
    const queues = testQueues(CATALOGUE);
    const unexpected: string[] = [];
    const runs = new Map<string, number>();
    let release = () => undefined as void;
    const hanging = new Promise<void>((resolve) => (release = resolve));
    const count = (name: MaintenanceJobName) => async () => void runs.set(name, (runs.get(name) ?? 0) + 1);
    const maintenance: Handlers<typeof CATALOGUE>['maintenance'] = {
      'tasks.fail-timed-out': async () => {
        await count('tasks.fail-timed-out')();
        throw new Error('this duty always fails');
      },
      'tasks.requeue': count('tasks.requeue'),
      'deliveries.requeue': count('deliveries.requeue'),
      'tasks.reconcile': count('tasks.reconcile'),
      'idempotency-keys.forget': async () => {
        await count('idempotency-keys.forget')();
        await hanging;
      },
      'tables.analyze': count('tables.analyze'),
      'history.prune': count('history.prune'),
      'results.sweep': count('results.sweep'),
      'results.expire': count('results.expire'),
    };
    const workers = startCatalogueWorkers(
      queues,
      { ...unexpectedHandlers(CATALOGUE, unexpected), maintenance },
      { redisTarget: REDIS, settings: SETTINGS, log },
    );
    const scheduling = keepJobsScheduled(queues, SETTINGS, log);
    try {
      await eventually('every scheduler declared', async () => (await queues.maintenance.getJobSchedulersCount()) === 9, 10_000);
      const schedulers = await queues.maintenance.getJobSchedulers();
      expect(Object.fromEntries(schedulers.map((s) => [s.key, s.every]))).toEqual({
        'tasks.fail-timed-out': 100,
        'tasks.requeue': 100,
        'deliveries.requeue': 100,
        'tasks.reconcile': 150,
        'idempotency-keys.forget': 1000,
        'tables.analyze': 100,
        'history.prune': 60_000,
        'results.sweep': 100,
        'results.expire': 60_000,
      });
      const others: MaintenanceJobName[] = ['tasks.requeue', 'deliveries.requeue', 'tasks.reconcile', 'tables.analyze'];
      await eventually(
        'the other duties ran again and again, and the failing one kept being tried',
        async () => [...others, 'tasks.fail-timed-out'].every((n) => (runs.get(n) ?? 0) >= 4),
        15_000,
      );
      const failed = await queues.maintenance.getJobs(['failed'], 0, 100);
      expect(new Set(failed.map((j) => j.name))).toEqual(new Set(['tasks.fail-timed-out']));
      // The hanging duty's scheduler produces its next run meanwhile, which ends at once instead of taking a second slot.
      const forget: MaintenanceJobName = 'idempotency-keys.forget';
      await eventually(
        'a later run of the hanging duty ended',
        async () => (await queues.maintenance.getJobs(['completed'], 0, 100)).some((j) => j.name === forget),
        10_000,
      );
      expect(runs.get(forget)).toBe(1);
      expect(unexpected).toEqual([]);
    } finally {
      scheduling.stop();
      release();
      await workers.close();
      await queues.dispose();
    }
  });

  it('drops the job schedulers the catalogue no longer names (the single sweep of earlier versions)', async () => {
    const queues = testQueues(CATALOGUE);
    await queues.maintenance.upsertJobScheduler('sweep', { every: 60_000 }, { name: 'sweep' });
    const scheduling = keepJobsScheduled(queues, SETTINGS, log);
    const ids = async () => (await queues.maintenance.getJobSchedulers()).map((s) => s.key).sort();
    try {
      await eventually("the schedulers are the catalogue's", async () => !(await ids()).includes('sweep'), 10_000);
      expect(await ids()).toEqual(Object.keys(CATALOGUE.maintenance.jobs).sort());
    } finally {
      scheduling.stop();
      await queues.dispose();
    }
  });

  it('a duty held up by a lock in Postgres holds up no other: a task whose enqueue was lost is still submitted', async () => {
    const h = await startHarness({ env: { IDEMPOTENCY_TTL_HOURS: '0.00003' } });
    const c = await h.pgClient();
    try {
      const tenant = await h.newTenant();
      const created = await request(h.url)
        .post('/v1/images/generations')
        .set(bearer(tenant.api_key))
        .set('idempotency-key', 'held')
        .send({ prompt: 'x' });
      expect(created.status).toBe(200);
      // The expired key's row is locked: forgetting it waits for this transaction.
      await c.query('BEGIN');
      expect((await c.query('SELECT key FROM idempotency_keys FOR UPDATE')).rowCount).toBe(1);
      // Read outside that transaction (which would keep its first view of the sessions), in this database only.
      const waiting = `SELECT 1 FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE 'DELETE FROM %idempotency_keys%'`;
      await eventually('the forgetting of keys waits for the lock', async () => (await h.api.db.sql(waiting)).rowCount === 1, 15_000);
      // A crash between commit and enqueue, while that duty hangs.
      const id = await insertQueuedTask(h.api.db, tenant.id);
      expect(await h.api.queues.submit.getJob(submitJobId(id))).toBeUndefined();
      await h.waitForTask(id, (t) => t.state === 'succeed');
      expect(await h.api.db.idempotencyKey.count()).toBe(1);
      await c.query('ROLLBACK');
      await eventually('the key is forgotten once the lock is gone', async () => (await h.api.db.idempotencyKey.count()) === 0, 15_000);
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
      await h.close();
    }
  });
});
