/**
 * One column map for the rows read with raw SQL (tasks, webhook deliveries, tenants): each table's
 * columns once, selected under Prisma's field names, so a raw row is the same object Prisma would
 * give and the rest of the code never sees the difference.
 */
const columnsOf = (list: string) => list.trim().split(/\s+/);

export const TABLE_COLUMNS = {
  tasks: columnsOf(`id tenant_id request_id external_task_id kind pool state request model_name slot_cost callback_url callback_token
    upstream_task_id status_msg failure_reason result upstream_created_at upstream_updated_at submit_attempts slots_held
    slots_wait_since next_poll_at poll_count cancel_requested_at cancel_reason cancel_message event_seq created_at updated_at
    submitted_at finished_at account_id results_expire_at files_state files storing_since copy_held_until files_expired_at`),
  webhook_deliveries: columnsOf(`id task_id tenant_id seq event_type url body status attempt_count chain next_attempt_at last_error
    created_at updated_at delivered_at`),
  tenants: columnsOf(`id name api_key_hash api_key_prefix access_key secret_key webhook_secret webhook_secret_previous created_at
    revoked_at result_retention_days`),
} as const;

/** Prisma's field name of a column (always its camelCase). */
export const fieldOf = (column: string) => column.replace(/_(.)/g, (_, c: string) => c.toUpperCase());

/** The select list of a table's columns under Prisma's field names; `of` qualifies them (`d.`, a composite's `(c.task).`). */
export function selectColumns(table: keyof typeof TABLE_COLUMNS, of = ''): string {
  return TABLE_COLUMNS[table].map((c) => `${of}${c} AS "${fieldOf(c)}"`).join(', ');
}
