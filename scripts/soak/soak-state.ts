import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createQueues } from '../../src/queues/queues';
import { withPg } from '../lib/local-services';

/** Live job states: a job in one of them will still run. */
export const LIVE_JOB_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children'] as const;

export interface TaskRow {
  id: string;
  external_task_id: string;
  state: string;
  upstream_task_id: string | null;
  slots_held: number;
  failure_reason: string | null;
}

export interface EventRow {
  task_id: string;
  seq: number;
  from_state: string | null;
  to_state: string;
}

export interface DeliveryRow {
  id: string;
  task_id: string;
  seq: number;
  event_type: string;
  status: string;
}

/** A job Redis still holds, and whose task it is for. */
export interface JobRow {
  queue: string;
  id: string;
  state: string;
  taskId?: string;
  deliveryId?: string;
}

/** What the service's stores hold at the end: Postgres rows and Redis jobs. */
export interface StoredState {
  tasks: TaskRow[];
  events: EventRow[];
  deliveries: DeliveryRow[];
  /** Per pool: the trigger-kept counter and the sum over tasks. */
  slots: { pool: string; counter: number; held: number }[];
  /** Per kind, finished state and failure reason: the trigger-kept count (`kt_tasks`) and the tasks' own. */
  counts: { key: string; counted: number; tasks: number }[];
  liveJobs: JobRow[];
  failedJobs: number;
}

/** Every key of either side: the trigger-kept count of finished tasks and the tasks' own. */
const COUNTS = `SELECT concat_ws(' ', kind, state, nullif(reason, '')) AS key, coalesce(c.n, 0)::int AS counted, coalesce(t.n, 0)::int AS tasks
  FROM (SELECT kind, state, reason, sum(n) AS n FROM task_counts GROUP BY 1, 2, 3) c
  FULL JOIN (SELECT kind, state, coalesce(failure_reason, '') AS reason, count(*) AS n FROM tasks
    WHERE state IN ('succeed', 'failed') GROUP BY 1, 2, 3) t
  USING (kind, state, reason)`;

export function readRows(databaseUrl: string): Promise<Omit<StoredState, 'liveJobs' | 'failedJobs'>> {
  return withPg(databaseUrl, async (c) => {
    const q = async <R>(sql: string) => (await c.query(sql)).rows as R[];
    // One snapshot: tasks, their events and their deliveries as of the same moment.
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    return {
      tasks: await q<TaskRow>('SELECT id, external_task_id, state, upstream_task_id, slots_held, failure_reason FROM tasks'),
      events: await q<EventRow>('SELECT task_id, seq, from_state, to_state FROM task_events ORDER BY task_id, seq'),
      deliveries: await q<DeliveryRow>('SELECT id, task_id, seq, event_type, status FROM webhook_deliveries ORDER BY task_id, seq'),
      slots: await q(`SELECT p.pool, coalesce((SELECT sum(held) FROM slot_counts s WHERE s.pool = p.pool), 0)::int AS counter,
          coalesce((SELECT sum(slots_held) FROM tasks t WHERE t.pool = p.pool), 0)::int AS held
        FROM (SELECT DISTINCT pool FROM slot_counts UNION SELECT DISTINCT pool FROM tasks) p`),
      counts: await q(COUNTS),
    };
  });
}

/** The jobs the submit and deliver queues still hold (live ones in full, failed ones counted). */
export function readJobs(redisUrl: string, prefix: string): Promise<{ liveJobs: JobRow[]; failedJobs: number }> {
  return withTaskQueues(redisUrl, prefix, async (queues) => {
    const liveJobs: JobRow[] = [];
    let failedJobs = 0;
    for (const queue of queues) {
      for (const state of LIVE_JOB_STATES) {
        for (const job of await queue.getJobs([state])) {
          if (job)
            liveJobs.push({ queue: queue.name, id: String(job.id), state, ...(job.data as { taskId?: string; deliveryId?: string }) });
        }
      }
      failedJobs += await queue.getJobCountByTypes('failed');
    }
    return { liveJobs, failedJobs };
  });
}

/** The queues whose jobs belong to tasks: submit and deliver. */
async function withTaskQueues<T>(redisUrl: string, prefix: string, work: (queues: Queue[]) => Promise<T>): Promise<T> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  const queues = createQueues(redis, { prefix, submitAttempts: 1, submitBackoffMs: 1 });
  try {
    return await work([queues.submit, queues.deliver]);
  } finally {
    await queues.close();
    redis.disconnect();
  }
}

/** How much is still to do (cheap enough to ask twice a second while draining), with a few of the unfinished tasks. */
export async function leftToDo(
  databaseUrl: string,
  redisUrl: string,
  prefix: string,
): Promise<{ unfinished: number; pending: number; liveJobs: number; examples: string[] }> {
  const rows = await withPg(databaseUrl, async (c) => {
    const counts = await c.query(`SELECT
      (SELECT count(*) FROM tasks WHERE state NOT IN ('succeed', 'failed'))::int AS unfinished,
      (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending')::int AS pending`);
    const examples = await c.query(`SELECT id, state, round(extract(epoch FROM next_poll_at - now() AT TIME ZONE 'UTC'))::int AS poll_in
      FROM tasks WHERE state NOT IN ('succeed', 'failed') ORDER BY created_at LIMIT 3`);
    return {
      ...(counts.rows[0] as { unfinished: number; pending: number }),
      examples: examples.rows.map((r) => `${r.id} ${r.state}${r.poll_in === null ? '' : `, next poll in ${r.poll_in} s`}`),
    };
  });
  const liveJobs = await withTaskQueues(redisUrl, prefix, async (queues) => {
    let n = 0;
    for (const queue of queues) n += await queue.getJobCountByTypes(...LIVE_JOB_STATES);
    return n;
  });
  return { ...rows, liveJobs };
}
