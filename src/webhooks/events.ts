import { randomUUID } from 'node:crypto';
import type { ClientStatus } from '../kinds/upstream-task';

/** Webhook event types: lowercase, dot-namespaced, one per client-visible status. */
export const EVENT_TYPE: Record<ClientStatus, string> = {
  submitted: 'task.submitted',
  processing: 'task.processing',
  succeed: 'task.succeeded',
  failed: 'task.failed',
};

/**
 * Standard Webhooks message ids look like Svix's: `msg_` + random (a UUID's 122 random bits, as 32
 * hex digits: randomUUID draws from a buffered pool, not a system call per id); no ':' (it becomes
 * a job id).
 */
export const newDeliveryId = () => `msg_${randomUUID().replaceAll('-', '')}`;
