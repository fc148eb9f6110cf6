-- CreateTable
CREATE TABLE "slot_counts" (
    "shard" SMALLINT NOT NULL,
    "held" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "slot_counts_pkey" PRIMARY KEY ("shard")
);



-- Hand-written (Prisma's schema cannot express triggers or functions): slot_counts holds the sum
-- of tasks.slots_held, kept exact by triggers on tasks, so a slot claim no longer sums every task
-- in flight (that sum was most of a claim's time with a few hundred tasks at the upstream). Any
-- write of slots_held counts, whoever makes it, in the same transaction. Increments (claims, which
-- already serialise on their advisory lock) go to shard 0; decrements (a task's end) go to one of
-- 127 other shards by transaction id, so concurrent releases rarely wait on one another's row lock
-- and never on a claim's. A row appears on first use: emptying the table together with tasks
-- (as tests do) leaves both consistent; TRUNCATE tasks alone empties it too.
ALTER TABLE "slot_counts" SET (fillfactor = 50);

CREATE FUNCTION "count_task_slots"() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  delta BIGINT := CASE TG_OP
    WHEN 'INSERT' THEN NEW.slots_held
    WHEN 'DELETE' THEN -OLD.slots_held
    ELSE NEW.slots_held - OLD.slots_held END;
BEGIN
  INSERT INTO slot_counts AS c (shard, held)
  VALUES (CASE WHEN delta > 0 THEN 0 ELSE 1 + (txid_current() % 127)::int END, delta)
  ON CONFLICT (shard) DO UPDATE SET held = c.held + EXCLUDED.held;
  RETURN NULL;
END
$$;

CREATE FUNCTION "forget_task_slots"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM slot_counts;
  RETURN NULL;
END
$$;

-- Creating the triggers locks tasks against writes until this migration commits, so the sum
-- below misses no concurrent change (and on a large table, holds writes for one scan of it).
CREATE TRIGGER "tasks_count_slots_insert" AFTER INSERT ON "tasks"
  FOR EACH ROW WHEN (NEW.slots_held <> 0) EXECUTE FUNCTION "count_task_slots"();
CREATE TRIGGER "tasks_count_slots_update" AFTER UPDATE OF "slots_held" ON "tasks"
  FOR EACH ROW WHEN (OLD.slots_held IS DISTINCT FROM NEW.slots_held) EXECUTE FUNCTION "count_task_slots"();
CREATE TRIGGER "tasks_count_slots_delete" AFTER DELETE ON "tasks"
  FOR EACH ROW WHEN (OLD.slots_held <> 0) EXECUTE FUNCTION "count_task_slots"();
CREATE TRIGGER "tasks_forget_slots" AFTER TRUNCATE ON "tasks"
  FOR EACH STATEMENT EXECUTE FUNCTION "forget_task_slots"();

INSERT INTO "slot_counts" ("shard", "held") SELECT 0, coalesce(sum("slots_held"), 0) FROM "tasks";

-- Only the claim's sum used it.
DROP INDEX "tasks_holding_slots_idx";

-- The claim, now reading the counter, and answering with the task row itself, so the submission
-- needs no read of its own first. The row is read back inside the function after its own write,
-- so it is exactly the row the claim left (a join in the calling statement would see the row as it
-- was before the call). With its p_count_first entry true, a claimed or held task that has never
-- been submitted counts this first attempt (tasks.submit_attempts) in the same commit; `counted`
-- says whether it did. Each task gets 'claimed', 'held', 'wait', 'gone' (not queued any more) or
-- 'missing'; `version` is the row version this call left when it wrote the row, and `task` the
-- row for 'claimed' and 'held'.
DROP FUNCTION "claim_task_slots"(TEXT[], INTEGER, BOOLEAN[]);

CREATE FUNCTION "claim_task_slots"(p_task_ids TEXT[], p_limit INTEGER, p_count_first BOOLEAN[])
RETURNS TABLE (task_id TEXT, result TEXT, counted BOOLEAN, version TEXT, task tasks)
LANGUAGE plpgsql AS $$
DECLARE
  t RECORD;
  need INTEGER;
  in_use BIGINT;
  ahead BIGINT;
BEGIN
  PERFORM pg_advisory_xact_lock(461707669351); -- 0x6b6c696e67, "kling": one pool per credential
  SELECT coalesce(sum(c.held), 0) INTO in_use FROM slot_counts c;
  FOR t IN
    SELECT i.id, i.count_first, k.state, k.n, k.slots_held, k.created_at, k.submit_attempts
    FROM (SELECT DISTINCT ON (u.id) u.id, u.count_first FROM unnest(p_task_ids, p_count_first) AS u(id, count_first)) i
    LEFT JOIN tasks k ON k.id = i.id
    ORDER BY k.created_at, i.id
  LOOP
    task_id := t.id;
    version := NULL;
    task := NULL;
    counted := coalesce(t.count_first AND t.state = 'queued' AND t.submit_attempts = 0, false);
    IF t.state IS NULL THEN
      result := 'missing';
    ELSIF t.state <> 'queued' THEN
      result := 'gone';
    ELSIF t.slots_held > 0 THEN
      IF counted THEN
        UPDATE tasks SET submit_attempts = submit_attempts + 1, updated_at = now() AT TIME ZONE 'UTC' WHERE id = t.id
        RETURNING xmin::text INTO version;
      END IF;
      result := 'held';
    ELSE
      need := least(greatest(t.n, 1), p_limit);
      SELECT coalesce(sum(least(greatest(w.n, 1), p_limit)), 0) INTO ahead FROM (
        SELECT n FROM tasks
        WHERE slots_wait_since IS NOT NULL AND state = 'queued' AND slots_held = 0
          AND (created_at, id) < (t.created_at, t.id)
        ORDER BY created_at, id
        LIMIT p_limit
      ) w;
      IF in_use + ahead + need > p_limit THEN
        UPDATE tasks SET slots_wait_since = coalesce(slots_wait_since, now() AT TIME ZONE 'UTC') WHERE id = t.id;
        counted := false;
        result := 'wait';
      ELSE
        UPDATE tasks SET slots_held = need, slots_wait_since = NULL, submit_attempts = submit_attempts + counted::int,
          updated_at = now() AT TIME ZONE 'UTC'
        WHERE id = t.id
        RETURNING xmin::text INTO version;
        in_use := in_use + need;
        result := 'claimed';
      END IF;
    END IF;
    IF result IN ('claimed', 'held') THEN
      SELECT * INTO task FROM tasks k WHERE k.id = t.id;
    END IF;
    RETURN NEXT;
  END LOOP;
END
$$;
