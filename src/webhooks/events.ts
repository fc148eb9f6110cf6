import { v7 as timeOrderedUuid } from 'uuid';
import type { ClientStatus } from '../kinds/upstream-task';

/** Webhook event types: lowercase, dot-namespaced, one per client-visible status. */
export const EVENT_TYPE: Record<ClientStatus, string> = {
  submitted: 'task.submitted',
  processing: 'task.processing',
  succeed: 'task.succeeded',
  failed: 'task.failed',
};

/**
 * Standard Webhooks message ids look like Svix's: `msg_` + 32 hex digits, here of a time-ordered
 * UUID (v7), so that the indexes on delivery ids (the deliveries', the attempts') take each new one
 * at their newest end rather than in a random page of the history; no ':' (it becomes a job id).
 */
export const newDeliveryId = () => `msg_${timeOrderedUuid().replaceAll('-', '')}`;
