-- Removing a task (TASK_RETENTION_DAYS) deletes its idempotency keys by cascade, which looks them
-- up by task: without this index, one scan of the table per removed task. Written only by creates
-- that carry a key.
-- CreateIndex
CREATE INDEX "idempotency_keys_task_id_idx" ON "idempotency_keys"("task_id");

-- Hand-written (Prisma 6's schema cannot declare a partial index): DELIVERY_RETENTION_DAYS removes
-- finished deliveries oldest first by their last change. Pending deliveries, the ones the hot path
-- writes, never enter it: a delivery adds one entry, when it finishes (an update that changes
-- `status`, so never a HOT one anyway). Built in the migration's transaction: on a large table,
-- writes to webhook_deliveries wait for the build.
CREATE INDEX "webhook_deliveries_finished_idx" ON "webhook_deliveries"("updated_at") WHERE "status" <> 'pending';
