import type { Db, WebhookDelivery as Delivery } from '../db/client';
import { z } from 'zod';
import { utc } from '../db/client';
import { selectColumns } from '../db/columns';
import { AppError, invalidParameter } from '../errors';
import { groupCommit } from '../lib/group-commit';
import { EVENT_TYPE } from './events';
import type { AttemptResult } from './webhook-sender';

/**
 * The statements every delivery runs (read, attempt record) are raw SQL through `db.sql`: Prisma's
 * per-call CPU would be most of a delivery's cost. Rows come back with
 * Prisma's field names and types, so the rest of the code sees the same `WebhookDelivery`.
 */
const deliveryColumns = (t: string) => selectColumns('webhook_deliveries', `${t}.`);

/** A Retry-After longer than this is taken as this (a receiver cannot park a delivery for weeks). */
const MAX_RETRY_AFTER_MS = 24 * 3600 * 1000;
const JITTER = 0.2;

/**
 * Delay before the next attempt, after `attemptsMade` failed ones (the schedule's entry i is the
 * delay before attempt i + 1), jittered so that retries of many deliveries do not arrive in lockstep;
 * a receiver's Retry-After pushes it later, never earlier. Null when the schedule is used up.
 */
export function nextDelayMs(schedule: readonly number[], attemptsMade: number, retryAfterMs?: number, random = Math.random): number | null {
  if (attemptsMade >= schedule.length) return null;
  const base = schedule[attemptsMade] * (1 - JITTER + 2 * JITTER * random());
  return Math.round(Math.max(base, Math.min(retryAfterMs ?? 0, MAX_RETRY_AFTER_MS)));
}

/** What one attempt of a delivery needs to know, read in one round trip. */
export interface DueDelivery {
  delivery: Delivery;
  /** The tenant's sealed webhook secrets: the current one first, then the previous one during a rotation. */
  sealedSecrets: string[];
  /**
   * The earliest still-pending delivery of the same task before this one (it must go out first),
   * with its next attempt time; null when there is none or this delivery is no longer pending.
   */
  predecessor: { nextAttemptAt: Date | null } | null;
}

/** The delivery, its tenant's webhook secrets and its pending predecessor, if any. Null when missing. */
export async function readDueDelivery(db: Db, id: string): Promise<DueDelivery | null> {
  const { rows } = await db.sql<
    Delivery & {
      webhookSecret: string;
      webhookSecretPrevious: string | null;
      predecessorId: string | null;
      predecessorNextAttemptAt: Date | null;
    }
  >(
    `SELECT ${deliveryColumns('d')}, t.webhook_secret AS "webhookSecret", t.webhook_secret_previous AS "webhookSecretPrevious",
       p.id AS "predecessorId", p.next_attempt_at AS "predecessorNextAttemptAt"
     FROM webhook_deliveries d
     JOIN tenants t ON t.id = d.tenant_id
     LEFT JOIN LATERAL (
       SELECT p.id, p.next_attempt_at FROM webhook_deliveries p
       WHERE d.status = 'pending' AND p.task_id = d.task_id AND p.seq < d.seq AND p.status = 'pending'
       ORDER BY p.seq LIMIT 1
     ) p ON true
     WHERE d.id = $1`,
    [id],
  );
  if (!rows.length) return null;
  const { webhookSecret, webhookSecretPrevious, predecessorId, predecessorNextAttemptAt, ...delivery } = rows[0];
  return {
    delivery,
    sealedSecrets: [webhookSecret, webhookSecretPrevious].filter((x): x is string => !!x),
    predecessor: predecessorId === null ? null : { nextAttemptAt: predecessorNextAttemptAt },
  };
}

/** Enough of a delivery to name its job (deliverJobId). */
export interface DeliveryRef {
  id: string;
  chain: number;
  attemptCount: number;
}

export interface AttemptOutcome {
  delivery: Delivery;
  /** True when this attempt ended the delivery (delivered, gone or dead). */
  finished: boolean;
  /**
   * When finished: the next still-pending delivery of the same task, which may have been waiting
   * for this one; null when there is none (and always while this one is still pending).
   */
  /** The task's next pending delivery when this attempt ended the delivery, with when it is due. */
  successor: (DeliveryRef & { dueAt: Date | null }) | null;
}

/**
 * Records one attempt and moves the delivery on: delivered on 2xx, gone on 410, dead when the
 * schedule is used up, otherwise pending with its next attempt time. Conditional on the attempt
 * count read, so one attempt is never recorded twice. Null when another writer got there first.
 *
 * One statement, so atomic without a transaction of several round trips: the attempt row is
 * inserted from the UPDATE's RETURNING, hence only when the guarded update matched. A concurrent
 * writer that matched first makes the UPDATE re-check its guard after the row lock and match
 * nothing. The successor is looked up in the same statement, so a delivery ending a task's last
 * pending one costs no further query; one committed while this statement runs is missed, as it
 * could be by a later query too, and then sees this delivery ended at its next re-check.
 *
 * Attempts ending while another record of this process is being written go together in the next
 * statement (group commit): one round trip and one commit for the batch, each with its own guard.
 */
export function recordAttempt(db: Db, d: Delivery, r: AttemptResult, schedule: readonly number[]): Promise<AttemptOutcome | null> {
  let record = recorders.get(db);
  if (!record) recorders.set(db, (record = groupCommit((batch: AttemptRecord[]) => recordBatch(db, batch), MAX_RECORD_BATCH)));
  return record({ d, r, schedule });
}

interface AttemptRecord {
  d: Delivery;
  r: AttemptResult;
  schedule: readonly number[];
}

/** Attempt records written together at most. */
const MAX_RECORD_BATCH = 50;
const recorders = new WeakMap<Db, (record: AttemptRecord) => Promise<AttemptOutcome | null>>();

/** Postgres text cannot hold U+0000; a receiver's answer can. */
const storable = (text: string | undefined) => text?.replaceAll('\u0000', '\uFFFD') ?? null;

async function recordBatch(db: Db, batch: AttemptRecord[]): Promise<(AttemptOutcome | null | Error)[]> {
  try {
    return await writeRecords(db, batch);
  } catch (err) {
    // One bad record must not fail the others: each is written on its own.
    if (batch.length === 1) throw err;
    return Promise.all(
      batch.map((one) =>
        writeRecords(db, [one]).then(
          (r) => r[0],
          (e: Error) => e,
        ),
      ),
    );
  }
}

async function writeRecords(db: Db, batch: AttemptRecord[]): Promise<(AttemptOutcome | null)[]> {
  const now = new Date();
  const items = batch.map(({ d, r, schedule }) => {
    const delay = r.ok || r.httpStatus === 410 ? null : nextDelayMs(schedule, d.attemptCount + 1, r.retryAfterMs);
    const status = r.ok ? 'delivered' : r.httpStatus === 410 ? 'gone' : delay === null ? 'dead' : 'pending';
    return { d, r, status, nextAttemptAt: delay === null ? null : utc(new Date(now.getTime() + delay)) };
  });
  const column = <V>(f: (i: (typeof items)[number]) => V) => items.map(f);
  const { rows } = await db.sql<
    Delivery & {
      n: number;
      successorId: string | null;
      successorChain: number | null;
      successorAttemptCount: number | null;
      successorDueAt: Date | null;
    }
  >(
    `WITH i AS (
       SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::delivery_status[], $5::text[], $6::timestamp[], $7::boolean[],
         $8::timestamp[], $9::int[], $10::int[], $11::text[], $12::text[])
         WITH ORDINALITY AS i(id, chain, attempt_count, status, last_error, next_attempt_at, ok, started_at, duration_ms,
           http_status, error, response_body, n)
     ), moved AS (
       UPDATE webhook_deliveries w
       SET attempt_count = i.attempt_count + 1, status = i.status, last_error = i.last_error, next_attempt_at = i.next_attempt_at,
           delivered_at = CASE WHEN i.ok THEN $13::timestamp ELSE w.delivered_at END, updated_at = $13::timestamp
       FROM i
       WHERE w.id = i.id AND w.chain = i.chain AND w.attempt_count = i.attempt_count AND w.status = 'pending'
       RETURNING w.*, i.n, i.started_at, i.duration_ms, i.http_status, i.error, i.response_body
     ), attempt AS (
       INSERT INTO webhook_attempts (delivery_id, chain, attempt, started_at, duration_ms, http_status, error, response_body)
       SELECT id, chain, attempt_count, started_at, duration_ms, http_status, error, response_body FROM moved
     )
     SELECT m.n::int AS n, ${deliveryColumns('m')}, s.id AS "successorId", s.chain AS "successorChain",
       s.attempt_count AS "successorAttemptCount", s.next_attempt_at AS "successorDueAt"
     FROM moved m
     LEFT JOIN LATERAL (
       SELECT s.id, s.chain, s.attempt_count, s.next_attempt_at FROM webhook_deliveries s
       WHERE m.status <> 'pending' AND s.task_id = m.task_id AND s.seq > m.seq AND s.status = 'pending'
       ORDER BY s.seq LIMIT 1
     ) s ON true`,
    [
      column((i) => i.d.id),
      column((i) => i.d.chain),
      column((i) => i.d.attemptCount),
      column((i) => i.status),
      column((i) => (i.r.ok ? null : storable(i.r.error ?? `HTTP ${i.r.httpStatus}`))),
      column((i) => i.nextAttemptAt),
      column((i) => i.r.ok),
      column((i) => utc(i.r.startedAt)),
      column((i) => i.r.durationMs),
      column((i) => i.r.httpStatus ?? null),
      column((i) => storable(i.r.error?.slice(0, 1000))),
      column((i) => storable(i.r.responseBody)),
      utc(now),
    ],
  );
  const byItem = new Map(rows.map((row) => [row.n, row]));
  return items.map((item, index) => {
    const row = byItem.get(index + 1);
    if (!row) return null;
    const { n: _n, successorId, successorChain, successorAttemptCount, successorDueAt, ...delivery } = row;
    return {
      delivery,
      finished: item.status !== 'pending',
      successor:
        successorId === null
          ? null
          : { id: successorId, chain: successorChain!, attemptCount: successorAttemptCount!, dueAt: successorDueAt },
    };
  });
}

const millis = (what: string) => z.int().describe(`${what}, Unix time in milliseconds`);

/** A delivery as the deliveries endpoints show it, declared once: the type and the OpenAPI entry come from it. */
export const DeliveryView = z.object({
  webhook_id: z.string().describe('The Standard Webhooks `webhook-id`: stable across retries and redeliveries'),
  event_type: z.enum(Object.values(EVENT_TYPE) as [string, ...string[]]),
  status: z.enum(['pending', 'delivered', 'gone', 'dead']),
  url: z.string().describe("The task's callback_url (normalised when the task was created)"),
  seq: z.int().describe("Order among the task's events"),
  chain: z.int().describe('1 for the first attempt chain, +1 per redelivery'),
  attempt_count: z.int(),
  next_attempt_at: millis('Next attempt').nullable(),
  last_error: z.string().nullable(),
  created_at: millis('Created'),
  delivered_at: millis('Delivered').nullable(),
  body: z.unknown().describe('The task object as sent'),
  attempts: z.array(
    z.object({
      chain: z.int(),
      attempt: z.int().describe('1 for the first attempt of its chain'),
      at: millis('Started'),
      duration_ms: z.int(),
      http_status: z.int().nullable(),
      error: z.string().nullable(),
      response_body: z
        .string()
        .nullable()
        .describe('First 1 KB of the answer, from a public address only: null when the receiver is on a private or loopback address'),
    }),
  ),
});
export type DeliveryView = z.infer<typeof DeliveryView>;

/** A task's deliveries in order, each with every attempt. */
export async function listDeliveries(db: Db, taskId: string): Promise<DeliveryView[]> {
  const rows = await db.webhookDelivery.findMany({
    where: { taskId },
    orderBy: { seq: 'asc' },
    include: { attempts: { orderBy: [{ chain: 'asc' }, { attempt: 'asc' }] } },
  });
  return rows.map((d) => ({
    webhook_id: d.id,
    event_type: d.eventType,
    status: d.status,
    url: d.url,
    seq: d.seq,
    chain: d.chain,
    attempt_count: d.attemptCount,
    next_attempt_at: d.nextAttemptAt?.getTime() ?? null,
    last_error: d.lastError,
    created_at: d.createdAt.getTime(),
    delivered_at: d.deliveredAt?.getTime() ?? null,
    body: JSON.parse(d.body),
    attempts: d.attempts.map((a) => ({
      chain: a.chain,
      attempt: a.attempt,
      at: a.startedAt.getTime(),
      duration_ms: a.durationMs,
      http_status: a.httpStatus,
      error: a.error,
      response_body: a.responseBody,
    })),
  }));
}

/**
 * Starts a new attempt chain for a finished delivery: same webhook-id and body, attempts from 0.
 * A delivery still pending is refused: it is already being retried.
 */
export async function redeliver(db: Db, taskId: string, deliveryId: string): Promise<Delivery> {
  const d = await db.webhookDelivery.findFirst({ where: { id: deliveryId, taskId } });
  if (!d) throw new AppError('not_found', `delivery not found: ${deliveryId.slice(0, 100)}`);
  if (d.status === 'pending')
    throw invalidParameter('delivery: is still pending (its retries are under way); redeliver it once it has finished');
  const moved = await db.webhookDelivery.updateMany({
    where: { id: d.id, chain: d.chain, status: d.status },
    data: { status: 'pending', chain: d.chain + 1, attemptCount: 0, nextAttemptAt: new Date(), lastError: null, deliveredAt: null },
  });
  if (moved.count === 0) throw invalidParameter('delivery: changed while redelivering; try again');
  return db.webhookDelivery.findUniqueOrThrow({ where: { id: d.id } });
}
