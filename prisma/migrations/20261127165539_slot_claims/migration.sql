-- AlterTable
ALTER TABLE "tasks" ADD COLUMN     "slots_wait_since" TIMESTAMP(3);

-- CreateIndex
CREATE INDEX "tasks_slots_held_idx" ON "tasks"("slots_held");

-- CreateIndex
CREATE INDEX "tasks_slots_wait_since_idx" ON "tasks"("slots_wait_since");


-- Hand-written (Prisma's schema cannot express functions): the upstream slot claim, in one round
-- trip. The advisory lock serialises claims across every process; being taken and released inside
-- the server, it is held for microseconds, never across a round trip to a busy Node process.
-- Order: a task never overtakes an older queued task that was told to wait for slots; otherwise
-- any task takes free slots at once (no waiting behind older tasks whose jobs have not run yet).
-- Returns 'claimed', 'held' (it already holds its slots), 'wait' or 'gone' (no longer queued).
-- With p_count_attempt, a claimed or held task also counts the submission attempt about to start
-- (tasks.submit_attempts), saving the submission a separate write and commit.
CREATE FUNCTION "claim_task_slots"(p_task_id TEXT, p_limit INTEGER, p_count_attempt BOOLEAN) RETURNS TEXT
LANGUAGE plpgsql AS $$
DECLARE
  t RECORD;
  need INTEGER;
  held BIGINT;
  ahead BIGINT;
BEGIN
  PERFORM pg_advisory_xact_lock(461707669351); -- 0x6b6c696e67, "kling": one pool per credential
  SELECT state, n, slots_held, created_at INTO t FROM tasks WHERE id = p_task_id;
  IF NOT FOUND OR t.state <> 'queued' THEN
    RETURN 'gone';
  END IF;
  IF t.slots_held > 0 THEN
    IF p_count_attempt THEN
      UPDATE tasks SET submit_attempts = submit_attempts + 1, updated_at = now() AT TIME ZONE 'UTC' WHERE id = p_task_id;
    END IF;
    RETURN 'held';
  END IF;
  need := least(greatest(t.n, 1), p_limit);
  SELECT coalesce(sum(slots_held), 0) INTO held FROM tasks WHERE slots_held > 0;
  SELECT coalesce(sum(least(greatest(w.n, 1), p_limit)), 0) INTO ahead FROM (
    SELECT n FROM tasks
    WHERE slots_wait_since IS NOT NULL AND state = 'queued' AND slots_held = 0
      AND (created_at, id) < (t.created_at, p_task_id)
    ORDER BY created_at, id
    LIMIT p_limit
  ) w;
  IF held + ahead + need > p_limit THEN
    UPDATE tasks SET slots_wait_since = coalesce(slots_wait_since, now() AT TIME ZONE 'UTC') WHERE id = p_task_id;
    RETURN 'wait';
  END IF;
  UPDATE tasks SET slots_held = need, slots_wait_since = NULL, submit_attempts = submit_attempts + p_count_attempt::int,
    updated_at = now() AT TIME ZONE 'UTC' WHERE id = p_task_id;
  RETURN 'claimed';
END
$$;
