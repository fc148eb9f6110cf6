-- Hand-written (Prisma 6's schema cannot declare a partial index). external_task_id is unique per
-- tenant, and most tasks have none. The unique index over every task kept an entry for each of
-- those, with NULL as its key: entries that no lookup and no conflict check ever reads, ordered by
-- where their row landed in the table. A create without an external id wrote one such entry, in a
-- leaf page of its own wherever the row went into an older page's free space (a page read, and a
-- full-page image in the WAL after each checkpoint). Over the tasks that have one, a create without
-- it writes nothing here. Lookups by external id (`external_task_id = $x`) imply it is not null, so
-- they use the new index; inserts name its predicate in ON CONFLICT. Built in the migration's
-- transaction: on a large table, creates wait for the build.
DROP INDEX "tasks_tenant_id_external_task_id_key";
CREATE UNIQUE INDEX "tasks_external_id_key" ON "tasks"("tenant_id", "external_task_id") WHERE "external_task_id" IS NOT NULL;
