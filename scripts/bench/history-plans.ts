import { randomUUID } from 'node:crypto';
import { createDb, type Db } from '../../src/db/client';
import { analyzeStaleTables } from '../../src/db/table-stats';
import { kindOf, KINDS } from '../../src/kinds/registry';
import { stageLimitsByKind } from '../../src/kinds/stage-limits';
import { createLogger } from '../../src/logger';
import { createQueues } from '../../src/queues/queues';
import { failTimedOutTasks } from '../../src/tasks/fail-timed-out-tasks';
import { forgetExpiredIdempotencyKeys } from '../../src/tasks/idempotency';
import { transition, type TaskStore } from '../../src/tasks/status-machine';
import { claimDuePolls } from '../../src/tasks/task-polling';
import { countTasks, countUnfinished, findTask, insertTask, listTasks, readTask, type ReadTask } from '../../src/tasks/task-repository';
import { claimSlots } from '../../src/tasks/task-slots';
import { readDueDelivery, recordAttempt } from '../../src/webhooks/deliveries.service';
import { sweepDueDeliveries, sweepQueuedTasks } from '../../workers/sweep-lost-jobs';
import { bench, history, type BenchKind } from './config';
import type { MeasuredDb } from './history-db';
import { cleanPrefix, redisClient } from './infra';

/**
 * The query plans, with history present, of the statements a task and the periodic jobs run: the
 * service's own functions are called on one connection where `auto_explain` sends every plan
 * (nested statements included: the slot claim is a function) back as a notice, with its actual
 * rows, times and buffers. One task is taken through its life for the writes; the database's
 * reset removes it afterwards.
 */
export interface Plans {
  name: string;
  plans: string[];
}

/** auto_explain in every session of the connection string, sending each plan, with actual rows, times and buffers, as a notice. */
const AUTO_EXPLAIN = [
  'TimeZone=UTC',
  'session_preload_libraries=auto_explain',
  'auto_explain.log_min_duration=0',
  'auto_explain.log_analyze=on',
  'auto_explain.log_buffers=on',
  'auto_explain.log_nested_statements=on',
  'auto_explain.log_level=notice',
]
  .map((s) => `-c ${s}`)
  .join(' ');

/** A Db whose every statement's plan lands in `notices` (the URL's options override the pool's); its statements run one at a time. */
function explainingDb(url: string, notices: string[]): Db {
  const db = createDb(`${url}?options=${encodeURIComponent(AUTO_EXPLAIN)}`, 2);
  db.pool.on('connect', (client) => client.on('notice', (n) => notices.push(n.message ?? '')));
  return db;
}

const must = <T>(x: T | null | undefined, what: string): T => {
  if (x === null || x === undefined) throw new Error(`plans: ${what}`);
  return x;
};

export async function capturePlans(on: MeasuredDb, kind: BenchKind): Promise<Plans[]> {
  const notices: string[] = [];
  const db = explainingDb(on.url, notices);
  const redis = redisClient();
  const prefix = `${bench.servicePrefix}-plans`;
  const queues = createQueues(redis, { prefix, submitAttempts: 1, submitBackoffMs: 1000 });
  const log = createLogger('error');
  const store: TaskStore = { db };
  const k = kindOf(kind.id);
  const out: Plans[] = [];
  /** Runs `op` `times` times (prepared statements settle on a plan after five) and keeps the last run's plans. */
  const plan = async <T>(name: string, op: () => Promise<T>, times = 1): Promise<T> => {
    let result!: T;
    for (let i = 0; i < times; i++) {
      notices.length = 0;
      result = await op();
    }
    out.push({ name, plans: [...notices] });
    return result;
  };
  try {
    const sample = must(
      await db.task.findFirst({ where: { tenantId: on.tenantId, kind: k.id, externalTaskId: { not: null } } }),
      'no task',
    );
    await plan('GET by id', () => findTask(db, on.tenantId, k, sample.id), 6);
    await plan('GET by external id (by id first, then by external_task_id)', () => findTask(db, on.tenantId, k, sample.externalTaskId!), 6);
    await plan(`list page 1 (pageSize ${history.pageSize})`, () => listTasks(db, on.tenantId, k, 1, history.pageSize), 6);
    await plan(`list page 1000 (pageSize ${history.pageSize})`, () => listTasks(db, on.tenantId, k, 1000, history.pageSize), 6);
    await plan('unfinished count of a create', () => countUnfinished(db, on.tenantId, 100_000_000), 6);

    const id = randomUUID();
    const request = { ...kind.body };
    await plan('create insert (task, first event)', () =>
      insertTask(db, {
        id,
        tenantId: on.tenantId,
        externalTaskId: `plans-${id}`,
        request,
        modelName: String(request.model_name),
        kind: k.id,
        pool: k.pool,
        slotCost: 1,
        callbackUrl: 'http://127.0.0.1:9/hook',
      }),
    );
    const limits = { image: 100_000, video: 100_000 };
    await plan('slot claim (claim_task_slots and its statements)', () => claimSlots(db, id, limits, true));
    const now = () => BigInt(Date.now());
    let t: ReadTask = must(await readTask(db, id), 'task gone');
    t = must(
      await plan('status change to submitted', () =>
        transition(store, t, {
          to: 'submitted',
          data: { upstreamTaskId: `up-${id}`, upstreamCreatedAt: now(), upstreamUpdatedAt: now(), submittedAt: new Date() },
          source: 'submit',
        }),
      ),
      'raced',
    );
    t = must(
      await plan('status change to processing, with its webhook delivery', () =>
        transition(store, t, { to: 'processing', data: { upstreamUpdatedAt: now() }, source: 'callback' }),
      ),
      'raced',
    );
    const delivery = must(await db.webhookDelivery.findFirst({ where: { taskId: id } }), 'no delivery');
    const due = must(await plan('webhook delivery read (its attempt)', () => readDueDelivery(db, delivery.id)), 'no delivery');
    await plan('webhook attempt record', () =>
      recordAttempt(db, due.delivery, { ok: true, httpStatus: 204, durationMs: 2, startedAt: new Date() }, [0, 5000]),
    );
    await plan('status change to succeed, releasing slots', () =>
      transition(store, t, { to: 'succeed', data: { upstreamUpdatedAt: now(), finishedAt: new Date() }, source: 'callback' }),
    );

    await plan('reconcile claim (tasks.reconcile)', () => claimDuePolls(db, 50, 60_000));
    const limitsByKind = stageLimitsByKind(KINDS, {}, {});
    await plan('stage timeouts (tasks.fail-timed-out)', () => failTimedOutTasks({ db, store, log, limits: limitsByKind }));
    await plan('lost submissions (tasks.requeue)', () => sweepQueuedTasks({ db, queues, log, minAgeMs: 5000 }));
    await plan('lost deliveries (deliveries.requeue)', () => sweepDueDeliveries({ db, queues, log, minAgeMs: 5000 }));
    await plan('statistics check (tables.analyze)', () => analyzeStaleTables(db));
    await plan('expired keys (idempotency-keys.forget)', () => forgetExpiredIdempotencyKeys(db, 24 * 3_600_000));
    await plan('task gauges (GET /metrics)', () => countTasks(db));
    return out;
  } finally {
    await queues.close();
    await cleanPrefix(redis, prefix);
    redis.disconnect();
    await db.$disconnect();
  }
}

/** A select list of many columns, either Prisma's (`"public"."tasks"."id", ...`) or the column map's (`id AS "id", ...`). */
const COLUMN_LIST = /(?:[\w."()]+(?:::\w+)?(?: AS "?\w+"?)?, ){7,}[\w."()]+(?:::\w+)?(?: AS "?\w+"?)?/g;

/** The plans as text, each statement under the name of what runs it (long column lists shortened). */
export function formatPlans(plans: Plans[]): string {
  const plain = (x: string) => x.trim().replace(COLUMN_LIST, '<columns>');
  return plans.map((p) => [`### ${p.name}`, '', ...p.plans.map((x) => `${plain(x)}\n`)].join('\n')).join('\n');
}
