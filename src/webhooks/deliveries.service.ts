import type { Db, Prisma } from '../db/client';
import { AppError, invalidParameter } from '../errors';
import type { AttemptResult } from './webhook-sender';

type Delivery = Prisma.WebhookDeliveryGetPayload<object>;

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

export interface AttemptOutcome {
  delivery: Delivery;
  /** True when this attempt ended the delivery (delivered, gone or dead). */
  finished: boolean;
}

/**
 * Records one attempt and moves the delivery on: delivered on 2xx, gone on 410, dead when the
 * schedule is used up, otherwise pending with its next attempt time. Conditional on the attempt
 * count read, so one attempt is never recorded twice. Null when another writer got there first.
 */
export async function recordAttempt(db: Db, d: Delivery, r: AttemptResult, schedule: readonly number[]): Promise<AttemptOutcome | null> {
  const attempt = d.attemptCount + 1;
  const delay = r.ok || r.httpStatus === 410 ? null : nextDelayMs(schedule, attempt, r.retryAfterMs);
  const status = r.ok ? 'delivered' : r.httpStatus === 410 ? 'gone' : delay === null ? 'dead' : 'pending';
  const lastError = r.ok ? null : (r.error ?? `HTTP ${r.httpStatus}`);
  return db.$transaction(async (tx) => {
    const moved = await tx.webhookDelivery.updateMany({
      where: { id: d.id, chain: d.chain, attemptCount: d.attemptCount, status: 'pending' },
      data: {
        attemptCount: attempt,
        status,
        lastError,
        nextAttemptAt: delay === null ? null : new Date(Date.now() + delay),
        ...(r.ok ? { deliveredAt: new Date() } : {}),
      },
    });
    if (moved.count === 0) return null;
    await tx.webhookAttempt.create({
      data: {
        deliveryId: d.id,
        chain: d.chain,
        attempt,
        startedAt: r.startedAt,
        durationMs: r.durationMs,
        httpStatus: r.httpStatus ?? null,
        error: r.error?.slice(0, 1000) ?? null,
        responseBody: r.responseBody ?? null,
      },
    });
    const delivery = await tx.webhookDelivery.findUniqueOrThrow({ where: { id: d.id } });
    return { delivery, finished: status !== 'pending' };
  });
}

/** The earliest still-pending delivery of the same task before this one: it must go out first. */
export function pendingPredecessor(db: Db, d: Delivery): Promise<Delivery | null> {
  return db.webhookDelivery.findFirst({ where: { taskId: d.taskId, seq: { lt: d.seq }, status: 'pending' }, orderBy: { seq: 'asc' } });
}

export function nextPendingOfTask(db: Db, d: Delivery): Promise<Delivery | null> {
  return db.webhookDelivery.findFirst({ where: { taskId: d.taskId, seq: { gt: d.seq }, status: 'pending' }, orderBy: { seq: 'asc' } });
}

export interface DeliveryView {
  webhook_id: string;
  event_type: string;
  status: Delivery['status'];
  url: string;
  seq: number;
  chain: number;
  attempt_count: number;
  next_attempt_at: number | null;
  last_error: string | null;
  created_at: number;
  delivered_at: number | null;
  body: unknown;
  attempts: {
    chain: number;
    attempt: number;
    at: number;
    duration_ms: number;
    http_status: number | null;
    error: string | null;
    response_body: string | null;
  }[];
}

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
