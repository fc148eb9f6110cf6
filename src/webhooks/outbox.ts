import { randomBytes } from 'node:crypto';
import type { ClientStatus } from '../tasks/task-state';

/** Webhook event types: lowercase, dot-namespaced, one per client-visible status. */
export const EVENT_TYPE: Record<ClientStatus, string> = {
  submitted: 'task.submitted',
  processing: 'task.processing',
  succeed: 'task.succeeded',
  failed: 'task.failed',
};

/** Standard Webhooks message ids look like Svix's: `msg_` + random; no ':' (it becomes a job id). */
export const newDeliveryId = () => `msg_${randomBytes(16).toString('hex')}`;
