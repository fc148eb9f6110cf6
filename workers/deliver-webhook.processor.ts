import { DelayedError, type Job } from 'bullmq';
import type { Db } from '../src/db/client';
import type { Logger } from '../src/logger';
import type { DeliverJob } from '../src/queues/catalogue';
import { DELIVERY_FIRST_RECHECK_MS, DELIVERY_ORDER_RECHECK_MS, deliverJobId, type Queues } from '../src/queues/queues';
import type { OpenWebhookSecrets } from '../src/tenants/secret-box';
import { readDueDelivery } from '../src/webhooks/deliveries.service';
import { attemptDelivery, type WebhookSettings } from '../src/webhooks/delivery-attempt';

export interface DeliverDeps {
  db: Db;
  openWebhookSecrets: OpenWebhookSecrets;
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
  return async ({ deliveryId }: DeliverJob, job: Job, token?: string): Promise<string> => {
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

    return attemptDelivery(deps, d, due.sealedSecrets);
  };
}
