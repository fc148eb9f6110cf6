import { utc, type WebhookDelivery as Delivery } from '../db/client';
import type { ClientStatus } from '../kinds/upstream-task';
import type { InlineDeliveries } from './delivery-attempt';
import { EVENT_TYPE, newDeliveryId } from './events';

/** A status change's webhook, written in the change's own statement (the outbox). */
export interface OutboxEntry {
  /** CTEs to add after the change's `t` (the updated task row: id, tenant_id, event_seq). */
  sql: string;
  /** Columns to add to the statement's final SELECT. */
  columns: string;
  /** Once the statement committed with its row: sends the first attempt inline, or gives the delivery ids for the queue. */
  committed(row: { behind?: boolean; secrets?: (string | null)[] }): string[];
  /** The statement failed or matched nothing: nothing was written. */
  abandoned(): void;
}

export interface OutboxInput {
  inline?: InlineDeliveries;
  taskId: string;
  tenantId: string;
  /** The event seq the change gives the task. */
  seq: number;
  url: string;
  status: ClientStatus;
  /** The task object as the change leaves it: the webhook body. */
  body: string;
  now: Date;
  /** Adds a parameter to the statement, giving its placeholder. */
  param(value: unknown): string;
  /** Placeholders the statement already has: the task's id and the change's time. */
  refs: { taskId: string; now: string };
}

/**
 * The delivery row of a status change. Its first attempt is sent by this process right after the
 * commit (or right after an earlier delivery of the task that this process is sending), leased to
 * it (see InlineDeliveries), unless an earlier one is pending elsewhere (order) or too many are in
 * flight: then it is due at once, for the queue.
 */
export function outboxEntry(o: OutboxInput): OutboxEntry {
  const eventType = EVENT_TYPE[o.status];
  const d: Delivery = {
    id: newDeliveryId(),
    taskId: o.taskId,
    tenantId: o.tenantId,
    seq: o.seq,
    eventType,
    url: o.url,
    body: o.body,
    status: 'pending',
    attemptCount: 0,
    chain: 1,
    nextAttemptAt: o.now,
    lastError: null,
    createdAt: o.now,
    updatedAt: o.now,
    deliveredAt: null,
  };
  const inline = o.inline;
  let reserved = inline?.reserve() ?? false;
  // An earlier delivery of the task being sent by this process: this one follows it (chained).
  const after = reserved ? inline!.sending(o.taskId) : undefined;
  const lease = () => `${o.param(utc(new Date(o.now.getTime() + inline!.leaseMs)))}::timestamp`;
  const due = !reserved
    ? `${o.refs.now}::timestamp`
    : after
      ? lease()
      : `CASE WHEN b.behind THEN ${o.refs.now}::timestamp ELSE ${lease()} END`;
  // Only an inline send needs to know about an earlier pending delivery and the tenant's secrets.
  const behind = reserved
    ? `b AS (SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE task_id = ${o.refs.taskId} AND status = 'pending') AS behind),`
    : '';
  const sql = `, ${behind}
     d AS (
      INSERT INTO webhook_deliveries (id, task_id, tenant_id, seq, event_type, url, body, next_attempt_at, created_at, updated_at)
      SELECT ${o.param(d.id)}, id, tenant_id, event_seq, ${o.param(eventType)}, ${o.param(d.url)}, ${o.param(o.body)}, ${due},
        ${o.refs.now}::timestamp, ${o.refs.now}::timestamp
      FROM t${reserved ? ', b' : ''})`;
  const columns = reserved
    ? `, (SELECT behind FROM b) AS behind,
      (SELECT ARRAY[webhook_secret, webhook_secret_previous] FROM tenants WHERE id = t.tenant_id) AS secrets`
    : '';
  const release = () => {
    if (reserved) inline!.release();
    reserved = false;
  };
  return {
    sql,
    columns,
    committed(row) {
      // An earlier delivery pending elsewhere: this one waits for it in the queue.
      if (reserved && row.behind && !after) release();
      if (!reserved) return [d.id];
      inline!.send(
        d,
        (row.secrets ?? []).filter((x): x is string => !!x),
        after,
      );
      return [];
    },
    abandoned: release,
  };
}
