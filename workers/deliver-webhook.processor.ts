import { DelayedError, Job } from 'bullmq';
import type { Db } from '../src/db/client';
import type { Logger } from '../src/logger';
import { metrics } from '../src/observability/metrics';
import {
  DELIVERY_FIRST_RECHECK_MS,
  DELIVERY_ORDER_RECHECK_MS,
  DeliverJob,
  deliverJobId,
  deliverJobOptions,
  type Queues,
} from '../src/queues/queues';
import { readDueDelivery, recordAttempt, type DeliveryRef } from '../src/webhooks/deliveries.service';
import { memoizedOpen, type SecretBox } from '../src/tenants/secret-box';
import { sendWebhook } from '../src/webhooks/webhook-sender';

export interface WebhookSettings {
  /** Delays before each attempt (WEBHOOK_RETRY_SCHEDULE_MS); its length is the number of attempts. */
  schedule: readonly number[];
  timeoutMs: number;
  allowPrivate: boolean;
}

export interface DeliverDeps {
  db: Db;
  secrets: SecretBox;
  queues: Queues;
  log: Logger;
  webhooks: WebhookSettings;
}

/**
 * Sends one attempt of one delivery. Guarded step: the row says whether the attempt is still due
 * (a leftover job of an earlier attempt or chain does nothing), whether an earlier status of the
 * same task must go first (then the job waits), and records the attempt conditionally.
 */
export function deliverWebhookProcessor(deps: DeliverDeps) {
  // AES-GCM per delivery is wasted work: a tenant's webhook secret changes only on rotation.
  const openSecret = memoizedOpen(deps.secrets);
  return async (job: Job, token?: string): Promise<string> => {
    const { deliveryId } = DeliverJob.parse(job.data);
    const due = await readDueDelivery(deps.db, deliveryId);
    if (!due) return 'missing';
    const { delivery: d, predecessor } = due;
    if (d.status !== 'pending') return d.status;
    if (job.id !== deliverJobId(d)) return 'stale';

    const now = Date.now();
    const recheck = now - job.timestamp < DELIVERY_ORDER_RECHECK_MS ? DELIVERY_FIRST_RECHECK_MS : DELIVERY_ORDER_RECHECK_MS;
    const waitUntil = predecessor
      ? Math.max(now + recheck, predecessor.nextAttemptAt?.getTime() ?? 0)
      : (d.nextAttemptAt?.getTime() ?? now);
    if (waitUntil > now + 20) {
      await job.moveToDelayed(waitUntil, token);
      throw new DelayedError();
    }

    const result = await sendWebhook({
      url: d.url,
      id: d.id,
      body: d.body,
      secrets: due.sealedSecrets.map(openSecret),
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
      if (outcome.successor) await kickSuccessor(deps, outcome.successor);
    } else {
      await deps.queues.deliver.add(
        'deliver',
        { deliveryId: d.id },
        deliverJobOptions(next, (next.nextAttemptAt?.getTime() ?? Date.now()) - Date.now()),
      );
    }
    return next.status;
  };
}

/** The next status of the same task may have been waiting for this one: let it go now. */
async function kickSuccessor(deps: DeliverDeps, successor: DeliveryRef): Promise<void> {
  const queue = deps.queues.deliver;
  const jobId = deliverJobId(successor);
  const data: DeliverJob = { deliveryId: successor.id };
  // Usually it is delayed, waiting for this one: one script moves it on (no read of the job first).
  const promoted = await new Job(queue, 'deliver', data, {}, jobId).promote().then(
    () => true,
    () => false,
  );
  if (!promoted && (await queue.getJobState(jobId)) === 'unknown') await queue.add('deliver', data, deliverJobOptions(successor));
}
