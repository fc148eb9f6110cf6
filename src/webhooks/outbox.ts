import { randomBytes } from 'node:crypto';
import type { Prisma, Task } from '../db/client';
import { toClientStatus, type ClientStatus } from '../tasks/task-state';
import { toTaskObject } from '../tasks/task-view';

/** Webhook event types: lowercase, dot-namespaced, one per client-visible status. */
export const EVENT_TYPE: Record<ClientStatus, string> = {
  submitted: 'task.submitted',
  processing: 'task.processing',
  succeed: 'task.succeeded',
  failed: 'task.failed',
};

/** Standard Webhooks message ids look like Svix's: `msg_` + random; no ':' (it becomes a job id). */
export const newDeliveryId = () => `msg_${randomBytes(16).toString('hex')}`;

/**
 * Writes the delivery of a task's new client-visible status, inside the transaction that made the
 * change. The body is frozen now: later changes of the task never alter what this event says.
 */
export async function recordDeliveryInTx(tx: Prisma.TransactionClient, task: Task): Promise<string> {
  const id = newDeliveryId();
  const now = new Date();
  await tx.webhookDelivery.create({
    data: {
      id,
      taskId: task.id,
      tenantId: task.tenantId,
      seq: task.eventSeq,
      eventType: EVENT_TYPE[toClientStatus(task.state)],
      url: task.callbackUrl!,
      body: JSON.stringify(toTaskObject(task)),
      nextAttemptAt: now,
    },
  });
  return id;
}
