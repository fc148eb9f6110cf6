-- Hand-written (Prisma 6's schema cannot declare a partial index). The unfinished-task count of a
-- create (MAX_UNFINISHED_TASKS, re-read at most once a second per API process) asked for a tenant's
-- tasks in the states that have not ended, and the only index with the tenant first was the one
-- over all of its tasks ever kept: each count read the tenant's whole history (in the benchmark,
-- ten thousand index entries and as many row visits per count after a few minutes). Over the
-- tasks that have not ended only, the count reads those and nothing else.
CREATE INDEX "tasks_unfinished_idx" ON "tasks"("tenant_id") WHERE "state" IN ('queued', 'submitted', 'processing');
