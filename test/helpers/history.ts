import { randomUUID } from 'node:crypto';
import type { Client } from 'pg';
import { utc } from '../../src/db/client';

const DAY_MS = 24 * 3600 * 1000;
const daysAgo = (days: number) => new Date(Date.now() - days * DAY_MS);

type State = 'queued' | 'submitted' | 'processing' | 'succeed' | 'failed';

const PATH: Record<State, State[]> = {
  queued: ['queued'],
  submitted: ['queued', 'submitted'],
  processing: ['queued', 'submitted', 'processing'],
  succeed: ['queued', 'submitted', 'processing', 'succeed'],
  failed: ['queued', 'submitted', 'failed'],
};

export interface PastDelivery {
  status: 'pending' | 'delivered' | 'gone' | 'dead';
  /** When it last changed (its last attempt, or a redelivery's). */
  changedDaysAgo: number;
  attempts: number;
}

export interface PastTask {
  state: State;
  createdDaysAgo: number;
  /** Unset for a task in flight. */
  finishedDaysAgo?: number;
  deliveries?: PastDelivery[];
  idempotencyKey?: string;
}

export interface PastRows {
  id: string;
  deliveryIds: string[];
}

/**
 * A task as the service leaves it, written at the given times: its events (one per state on its
 * way), deliveries with their attempts, and Idempotency-Key. Write them oldest first, as the
 * service does: event ids rise with time.
 */
export async function insertPastTask(c: Client, tenantId: string, t: PastTask): Promise<PastRows> {
  // One transaction, as the service writes a task: a prune running meanwhile sees all of it or nothing.
  await c.query('BEGIN');
  try {
    const rows = await insertRows(c, tenantId, t);
    await c.query('COMMIT');
    return rows;
  } catch (err) {
    await c.query('ROLLBACK');
    throw err;
  }
}

async function insertRows(c: Client, tenantId: string, t: PastTask): Promise<PastRows> {
  const id = randomUUID();
  const created = daysAgo(t.createdDaysAgo);
  const finished = t.finishedDaysAgo === undefined ? null : daysAgo(t.finishedDaysAgo);
  const states = PATH[t.state];
  const last = finished ?? new Date(created.getTime() + 60_000);
  const at = (i: number) => new Date(created.getTime() + ((last.getTime() - created.getTime()) * i) / Math.max(states.length - 1, 1));
  await c.query(
    `INSERT INTO tasks (id, tenant_id, kind, pool, request, model_name, slot_cost, callback_url, state, result, event_seq,
                        created_at, updated_at, submitted_at, finished_at)
     VALUES ($1, $2, 'image-generation', 'image', '{"prompt":"x"}', 'kling-v3', 1, $3, $4::task_state, $5, $6, $7, $8, $9, $10)`,
    [
      id,
      tenantId,
      t.deliveries?.length ? 'http://127.0.0.1:9/hook' : null,
      t.state,
      t.state === 'succeed' ? JSON.stringify({ images: [{ index: 0, url: 'https://example.com/a.png' }] }) : null,
      states.length,
      utc(created),
      utc(last),
      states.length > 1 ? utc(at(1)) : null,
      finished && utc(finished),
    ],
  );
  for (const [i, state] of states.entries()) {
    await c.query(
      `INSERT INTO task_events (task_id, seq, from_state, to_state, source, created_at) VALUES ($1, $2, $3::task_state, $4::task_state, 'api', $5)`,
      [id, i + 1, i ? states[i - 1] : null, state, utc(at(i))],
    );
  }
  const deliveryIds: string[] = [];
  for (const [i, d] of (t.deliveries ?? []).entries()) deliveryIds.push(await insertPastDelivery(c, id, tenantId, i + 1, created, d));
  if (t.idempotencyKey)
    await c.query(`INSERT INTO idempotency_keys (tenant_id, key, request_hash, task_id, created_at) VALUES ($1, $2, 'hash', $3, $4)`, [
      tenantId,
      t.idempotencyKey,
      id,
      utc(created),
    ]);
  return { id, deliveryIds };
}

async function insertPastDelivery(
  c: Client,
  taskId: string,
  tenantId: string,
  seq: number,
  created: Date,
  d: PastDelivery,
): Promise<string> {
  const id = `msg_${randomUUID().replaceAll('-', '')}`;
  const changed = daysAgo(d.changedDaysAgo);
  await c.query(
    `INSERT INTO webhook_deliveries (id, task_id, tenant_id, seq, event_type, url, body, status, attempt_count, next_attempt_at,
                                     created_at, updated_at, delivered_at)
     VALUES ($1, $2, $3, $4, 'task.succeeded', 'http://127.0.0.1:9/hook', '{}', $5::delivery_status, $6, $7, $8, $9, $10)`,
    [
      id,
      taskId,
      tenantId,
      seq,
      d.status,
      d.attempts,
      d.status === 'pending' ? utc(new Date()) : null,
      utc(created),
      utc(changed),
      d.status === 'delivered' ? utc(changed) : null,
    ],
  );
  for (let a = 1; a <= d.attempts; a++) {
    await c.query(
      `INSERT INTO webhook_attempts (delivery_id, chain, attempt, started_at, duration_ms, http_status) VALUES ($1, 1, $2, $3, 5, $4)`,
      [id, a, utc(changed), a === d.attempts && d.status === 'delivered' ? 200 : 500],
    );
  }
  return id;
}

/** How many rows each table holds for a task: its own, events, deliveries, attempts, keys. */
export async function rowsOf(c: Client, taskId: string): Promise<Record<string, number>> {
  const { rows } = await c.query(
    `SELECT (SELECT count(*) FROM tasks WHERE id = $1)::int AS tasks,
       (SELECT count(*) FROM task_events WHERE task_id = $1)::int AS task_events,
       (SELECT count(*) FROM webhook_deliveries WHERE task_id = $1)::int AS webhook_deliveries,
       (SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.task_id = $1)::int AS webhook_attempts,
       (SELECT count(*) FROM idempotency_keys WHERE task_id = $1)::int AS idempotency_keys`,
    [taskId],
  );
  return rows[0];
}
