-- CreateTable
CREATE TABLE "task_counts" (
    "shard" SMALLINT NOT NULL,
    "kind" TEXT NOT NULL,
    "state" "task_state" NOT NULL,
    "reason" TEXT NOT NULL,
    "n" BIGINT NOT NULL,

    CONSTRAINT "task_counts_pkey" PRIMARY KEY ("shard","kind","state","reason")
);


-- Hand-written (Prisma's schema cannot express triggers or functions). `GET /metrics` counted every
-- task by kind and state on each scrape: two full scans, 2.6 s each with two million tasks kept.
-- These triggers keep task_counts exact instead, in the same transaction as any write to tasks,
-- whoever makes it. Writers never wait on each other here: a transaction adds to one shard of its own,
-- claimed with a transaction-scoped advisory lock that it alone holds until it ends, so no two
-- transactions ever update the same row at once (and so can never deadlock on these rows). A
-- transaction keeps the shard it first claimed (remembered in a transaction-local setting). Updates
-- change only `n`, which no index covers: they are HOT updates, whose dead versions the pages
-- reclaim without a vacuum (fillfactor 50 leaves them the room).
ALTER TABLE "task_counts" SET (fillfactor = 50);

-- As many shards as there can be connections (128 at least), each transaction holding one: a free
-- one is always found. (Only prepared transactions, which keep their locks without a connection,
-- could take the last ones; a transaction then waits for its first choice, as it would for a plain
-- counter's row.)
CREATE FUNCTION "task_count_shard"() RETURNS SMALLINT
LANGUAGE plpgsql AS $$
DECLARE
  held TEXT := nullif(current_setting('kt.task_count_shard', true), '');
  shards INTEGER;
  first INTEGER;
BEGIN
  IF held IS NOT NULL THEN
    RETURN held::SMALLINT;
  END IF;
  shards := least(greatest(128, current_setting('max_connections')::INTEGER), 32767);
  first := (txid_current() % shards)::INTEGER;
  FOR i IN 0..shards - 1 LOOP
    IF pg_try_advisory_xact_lock(1801677684, (first + i) % shards) THEN -- 1801677684: "kt-c"
      PERFORM set_config('kt.task_count_shard', ((first + i) % shards)::TEXT, true);
      RETURN (first + i) % shards;
    END IF;
  END LOOP;
  PERFORM pg_advisory_xact_lock(1801677684, first);
  PERFORM set_config('kt.task_count_shard', first::TEXT, true);
  RETURN first;
END
$$;

-- A task whose kind, state or reason changed leaves its old key and joins its new one. The trigger's
-- WHEN compares the keys as stored here (no reason and '' are one key), so the two differ.
CREATE FUNCTION "count_changed_task"() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  mine SMALLINT := task_count_shard();
BEGIN
  INSERT INTO task_counts AS c (shard, kind, state, reason, n)
  VALUES (mine, OLD.kind, OLD.state, coalesce(OLD.failure_reason, ''), -1),
         (mine, NEW.kind, NEW.state, coalesce(NEW.failure_reason, ''), 1)
  ON CONFLICT (shard, kind, state, reason) DO UPDATE SET n = c.n + EXCLUDED.n;
  RETURN NULL;
END
$$;

CREATE FUNCTION "count_new_task"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO task_counts AS c (shard, kind, state, reason, n)
  VALUES (task_count_shard(), NEW.kind, NEW.state, coalesce(NEW.failure_reason, ''), 1)
  ON CONFLICT (shard, kind, state, reason) DO UPDATE SET n = c.n + EXCLUDED.n;
  RETURN NULL;
END
$$;

-- Deletes are counted per statement: retention's batch of a thousand tasks is a few rows here.
CREATE FUNCTION "count_removed_tasks"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO task_counts AS c (shard, kind, state, reason, n)
  SELECT task_count_shard(), kind, state, coalesce(failure_reason, ''), -count(*)
  FROM old_tasks GROUP BY kind, state, coalesce(failure_reason, '')
  ON CONFLICT (shard, kind, state, reason) DO UPDATE SET n = c.n + EXCLUDED.n;
  RETURN NULL;
END
$$;

-- Zeroed in place rather than deleted, for the reason slot_counts is (migration
-- slot_counter_zero_on_truncate): deleted rows would stay until a vacuum.
CREATE FUNCTION "forget_task_counts"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE task_counts SET n = 0 WHERE n <> 0;
  RETURN NULL;
END
$$;

-- Counts every task again, for writes made with triggers off (a bulk load under
-- session_replication_role = replica). Writers to tasks wait until it commits.
CREATE FUNCTION "recount_tasks"() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  LOCK TABLE tasks IN SHARE MODE;
  UPDATE task_counts SET n = 0 WHERE n <> 0;
  INSERT INTO task_counts AS c (shard, kind, state, reason, n)
  SELECT 0, kind, state, coalesce(failure_reason, ''), count(*)
  FROM tasks GROUP BY kind, state, coalesce(failure_reason, '')
  ON CONFLICT (shard, kind, state, reason) DO UPDATE SET n = EXCLUDED.n;
END
$$;

CREATE TRIGGER "tasks_count_insert" AFTER INSERT ON "tasks"
  FOR EACH ROW EXECUTE FUNCTION "count_new_task"();
CREATE TRIGGER "tasks_count_update" AFTER UPDATE OF "kind", "state", "failure_reason" ON "tasks"
  FOR EACH ROW WHEN (OLD.kind IS DISTINCT FROM NEW.kind OR OLD.state IS DISTINCT FROM NEW.state
    OR coalesce(OLD.failure_reason, '') IS DISTINCT FROM coalesce(NEW.failure_reason, ''))
  EXECUTE FUNCTION "count_changed_task"();
CREATE TRIGGER "tasks_count_delete" AFTER DELETE ON "tasks"
  REFERENCING OLD TABLE AS old_tasks FOR EACH STATEMENT EXECUTE FUNCTION "count_removed_tasks"();
CREATE TRIGGER "tasks_forget_counts" AFTER TRUNCATE ON "tasks"
  FOR EACH STATEMENT EXECUTE FUNCTION "forget_task_counts"();

-- The tasks already kept (creating the triggers locked tasks against writes until this commits).
SELECT recount_tasks();
