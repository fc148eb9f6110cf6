-- Hand-written: task_counts keeps only finished tasks (succeed, failed).
--
-- The history is what grows without bound, so it is what must not be counted at each scrape; the
-- unfinished tasks are the deployment's work in flight, few and bounded, and `GET /metrics` counts
-- them at once through `tasks_state_created_at_idx` (src/tasks/task-repository.ts, countTasks).
-- Counting every change of state cost each task four trigger calls (its insert and three changes
-- on the way to its end), about a quarter of each of those statements' time in Postgres; now a task
-- is counted once, when it ends. A task that ends is never moved again by the service, but any
-- other writer's changes are followed too: a row leaves its key if it was finished and joins its
-- new one if it is. The shards, their advisory locks and the triggers on delete and truncate are
-- as in migration `task_counts`.

CREATE OR REPLACE FUNCTION "count_changed_task"() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  mine SMALLINT := task_count_shard();
BEGIN
  INSERT INTO task_counts AS c (shard, kind, state, reason, n)
  SELECT mine, k.kind, k.state, k.reason, k.n
  FROM (VALUES (OLD.kind, OLD.state, coalesce(OLD.failure_reason, ''), -1),
               (NEW.kind, NEW.state, coalesce(NEW.failure_reason, ''), 1)) AS k (kind, state, reason, n)
  WHERE k.state IN ('succeed', 'failed')
  ON CONFLICT (shard, kind, state, reason) DO UPDATE SET n = c.n + EXCLUDED.n;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION "count_removed_tasks"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO task_counts AS c (shard, kind, state, reason, n)
  SELECT task_count_shard(), kind, state, coalesce(failure_reason, ''), -count(*)
  FROM old_tasks WHERE state IN ('succeed', 'failed') GROUP BY kind, state, coalesce(failure_reason, '')
  ON CONFLICT (shard, kind, state, reason) DO UPDATE SET n = c.n + EXCLUDED.n;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION "recount_tasks"() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  LOCK TABLE tasks IN SHARE MODE;
  UPDATE task_counts SET n = 0 WHERE n <> 0;
  INSERT INTO task_counts AS c (shard, kind, state, reason, n)
  SELECT 0, kind, state, coalesce(failure_reason, ''), count(*)
  FROM tasks WHERE state IN ('succeed', 'failed') GROUP BY kind, state, coalesce(failure_reason, '')
  ON CONFLICT (shard, kind, state, reason) DO UPDATE SET n = EXCLUDED.n;
END
$$;

-- The triggers fire only for a row that is finished (before or after): the others cost nothing.
DROP TRIGGER "tasks_count_insert" ON "tasks";
CREATE TRIGGER "tasks_count_insert" AFTER INSERT ON "tasks"
  FOR EACH ROW WHEN (NEW.state IN ('succeed', 'failed'))
  EXECUTE FUNCTION "count_new_task"();
DROP TRIGGER "tasks_count_update" ON "tasks";
CREATE TRIGGER "tasks_count_update" AFTER UPDATE OF "kind", "state", "failure_reason" ON "tasks"
  FOR EACH ROW WHEN ((OLD.state IN ('succeed', 'failed') OR NEW.state IN ('succeed', 'failed'))
    AND (OLD.kind IS DISTINCT FROM NEW.kind OR OLD.state IS DISTINCT FROM NEW.state
      OR coalesce(OLD.failure_reason, '') IS DISTINCT FROM coalesce(NEW.failure_reason, '')))
  EXECUTE FUNCTION "count_changed_task"();

-- The rows of unfinished keys go (once, here: they are few, one per shard, kind and state used);
-- the finished tasks are counted again (writers to tasks wait until this commits).
DELETE FROM task_counts WHERE state NOT IN ('succeed', 'failed');
SELECT recount_tasks();
