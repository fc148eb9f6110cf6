import { Job } from 'bullmq';
import { utc, type Db, type WebhookDelivery as Delivery } from '../db/client';
import type { Logger } from '../logger';
import { metrics } from '../observability/metrics';
import type { DeliverJob } from '../queues/catalogue';
import { deliverJobId, deliverJobOptions, enqueueDeliveryAttempt, type Queues } from '../queues/queues';
import type { OpenWebhookSecrets } from '../tenants/secret-box';
import { recordAttempt, type DeliveryRef } from './deliveries.service';
import { sendWebhook } from './webhook-sender';

export interface WebhookSettings {
  /** Delays before each attempt (WEBHOOK_RETRY_SCHEDULE_MS); its length is the number of attempts. */
  schedule: readonly number[];
  timeoutMs: number;
  allowPrivate: boolean;
}

export interface AttemptDeps {
  db: Db;
  queues: Queues;
  log: Logger;
  webhooks: WebhookSettings;
  /** Opens a tenant's sealed webhook secrets (memoized: see secret-box.ts). */
  openWebhookSecrets: OpenWebhookSecrets;
}

/**
 * Sends one attempt of a delivery that is due and first in its task's order, records it
 * (conditionally: an attempt is never recorded twice), then lets the task's next delivery go or
 * schedules this one's next attempt. The caller has checked that it is due. Returns the delivery's
 * status after the attempt, or 'raced' when another sender recorded this attempt first.
 */
export async function attemptDelivery(deps: AttemptDeps, d: Delivery, sealedSecrets: string[]): Promise<string> {
  const result = await sendWebhook({
    url: d.url,
    id: d.id,
    body: d.body,
    secrets: deps.openWebhookSecrets(d.tenantId, sealedSecrets),
    timeoutMs: deps.webhooks.timeoutMs,
    allowPrivate: deps.webhooks.allowPrivate,
  });
  const outcome = await recordAttempt(deps.db, d, result, deps.webhooks.schedule);
  if (!outcome) return 'raced';
  const next = outcome.delivery;
  metrics.webhookAttempts.inc({ outcome: result.ok ? 'delivered' : next.status === 'pending' ? 'failed' : next.status });
  if (result.ok) metrics.webhookLatency.observe((Date.now() - d.createdAt.getTime()) / 1000);
  deps.log.info(
    {
      task_id: d.taskId,
      webhook_id: d.id,
      event: d.eventType,
      attempt: next.attemptCount,
      http_status: result.httpStatus,
      error: result.error,
      status: next.status,
    },
    'webhook attempt',
  );
  if (outcome.finished) {
    // A successor due later is not waiting for this one: it is being retried, or leased to the
    // process sending it right after this one (InlineDeliveries); its own time stands.
    const s = outcome.successor;
    if (s && (s.dueAt?.getTime() ?? 0) <= Date.now()) await kickSuccessor(deps.queues, s);
  } else {
    await deps.queues.deliver.add(
      'deliver',
      { deliveryId: d.id } satisfies DeliverJob,
      deliverJobOptions(next, (next.nextAttemptAt?.getTime() ?? Date.now()) - Date.now()),
    );
  }
  return next.status;
}

/** The next status of the same task may have been waiting for this one: let it go now. */
async function kickSuccessor(queues: Queues, successor: DeliveryRef): Promise<void> {
  const queue = queues.deliver;
  const jobId = deliverJobId(successor);
  const data: DeliverJob = { deliveryId: successor.id };
  // Usually it is delayed, waiting for this one: one script moves it on (no read of the job first).
  const promoted = await new Job(queue, 'deliver', data, {}, jobId).promote().then(
    () => true,
    () => false,
  );
  if (!promoted && (await queue.getJobState(jobId)) === 'unknown') await queue.add('deliver', data, deliverJobOptions(successor));
}

/**
 * First attempts sent by the process that committed the status change, without a queue hop: a
 * job per webhook would add an enqueue, a job run and a delivery read to every task. Bounded: past
 * `max` sends in flight, new deliveries go through the queue as before. The delivery row is
 * committed before the send and its first attempt is due only after `leaseMs` (longer than a send
 * can take), so if this process dies mid-send the sweep sends it then; a retry, an ordering wait or
 * any failure of this path goes through the queue.
 */
export interface InlineDeliveries {
  /** Takes a place for one send; false when `max` are in flight (then use the queue). */
  reserve(): boolean;
  /** Gives back a place that was not used. */
  release(): void;
  /**
   * Sends the first attempt of a committed delivery (its place was reserved); never throws. With
   * `after` (the send of an earlier delivery of the same task, from `sending`), it goes only once
   * that one has ended; if it did not end (a retry is scheduled), it is handed to the queue.
   */
  send(d: Delivery, sealedSecrets: string[], after?: Promise<string>): void;
  /** The send in flight in this process for a task's latest delivery, if any. */
  sending(taskId: string): Promise<string> | undefined;
  /** How long the first attempt of an inline delivery is leased to this process. */
  leaseMs: number;
  /** Waits for the sends in flight (bounded by the webhook timeout). */
  drain(): Promise<void>;
}

const ENDED = new Set(['delivered', 'gone', 'dead']);

/**
 * Inline sends in flight at most per process. A place is held from the commit of the status change
 * until the attempt's record commits, including a chained send's wait for the one before it: two
 * per task, for the send plus a group commit plus any event-loop lag. 256 absorbs a slow process's
 * bursts, keeps the queue for what it is for (slow receivers, retries) and bounds the memory and
 * sockets (a few KB and one socket each);
 * kt_webhook_inline_full_total counts the sends it turns away.
 */
const MAX_INLINE_SENDS = 256;

export function createInlineDeliveries(deps: AttemptDeps, max = MAX_INLINE_SENDS): InlineDeliveries {
  let reserved = 0;
  const inFlight = new Set<Promise<unknown>>();
  const byTask = new Map<string, Promise<string>>();

  /** An inline delivery that cannot go now: due at once, for the queue (where it waits for its predecessor). */
  const handOver = async (d: Delivery): Promise<string> => {
    await deps.db.sql(
      `UPDATE webhook_deliveries SET next_attempt_at = $2::timestamp, updated_at = $2::timestamp
       WHERE id = $1 AND status = 'pending' AND attempt_count = 0`,
      [d.id, utc(new Date())],
    );
    if (!(await enqueueDeliveryAttempt(deps.queues, d))) throw new Error('could not enqueue the delivery now');
    return 'queued';
  };

  const inline: InlineDeliveries = {
    leaseMs: deps.webhooks.timeoutMs + 5_000,
    reserve() {
      if (reserved >= max) {
        // Not lost, only slower (a job and a hop to the worker): a steady count says raise the cap.
        metrics.webhookInlineFull.inc();
        return false;
      }
      reserved++;
      return true;
    },
    release() {
      reserved--;
    },
    sending: (taskId) => byTask.get(taskId),
    send(d, sealedSecrets, after) {
      const attempt = () => attemptDelivery(deps, d, sealedSecrets);
      const run: Promise<string> = (after ? after.then((status) => (ENDED.has(status) ? attempt() : handOver(d))) : attempt())
        .catch((err: Error) => {
          // Whatever was not recorded is still pending in its row: the sweep sends it once the lease has run out.
          deps.log.warn({ webhook_id: d.id, err: err.message }, 'inline webhook attempt failed; the sweep will retry it');
          return 'failed';
        })
        .finally(() => {
          inline.release();
          inFlight.delete(run);
          if (byTask.get(d.taskId) === run) byTask.delete(d.taskId);
        });
      inFlight.add(run);
      byTask.set(d.taskId, run);
    },
    async drain() {
      await Promise.allSettled([...inFlight]);
    },
  };
  return inline;
}
