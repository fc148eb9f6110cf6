-- AlterTable
ALTER TABLE "tasks" ADD COLUMN     "slots_wait_since" TIMESTAMP(3);

-- CreateIndex
CREATE INDEX "tasks_slots_held_idx" ON "tasks"("slots_held");

-- CreateIndex
CREATE INDEX "tasks_slots_wait_since_idx" ON "tasks"("slots_wait_since");


-- Hand-written (Prisma's schema cannot express functions): upstream slot claims, for a batch of
-- tasks in one round trip. The advisory lock serialises claims across every process; taken inside
-- the server, it is never held across a round trip to a busy Node process, and a batch pays for it
-- (and for the commit that releases it) once.
-- Order: a task never overtakes an older queued task that was told to wait for slots; otherwise
-- any task takes free slots at once (no waiting behind older tasks whose jobs have not run yet).
-- Each task gets 'claimed', 'held' (it already holds its slots), 'wait' or 'gone' (not queued),
-- and, when this call wrote it (claimed, or held and counted), the row version (xmin) it left.
-- With its p_count_attempts entry true, a claimed or held task also counts the submission attempt
-- about to start (tasks.submit_attempts), saving the submission a separate write and commit.
CREATE FUNCTION "claim_task_slots"(p_task_ids TEXT[], p_limit INTEGER, p_count_attempts BOOLEAN[])
RETURNS TABLE (task_id TEXT, result TEXT, version TEXT)
LANGUAGE plpgsql AS $$
DECLARE
  t RECORD;
  need INTEGER;
  held BIGINT;
  ahead BIGINT;
BEGIN
  PERFORM pg_advisory_xact_lock(461707669351); -- 0x6b6c696e67, "kling": one pool per credential
  -- Each holder holds at least one slot: past p_limit holders the pool is full whatever the rest hold.
  SELECT coalesce(sum(h.slots_held), 0) INTO held FROM (SELECT slots_held FROM tasks WHERE slots_held > 0 LIMIT p_limit) h;
  FOR t IN
    SELECT i.id, i.count_attempt, k.state, k.n, k.slots_held, k.created_at
    FROM (SELECT DISTINCT ON (u.id) u.id, u.count_attempt FROM unnest(p_task_ids, p_count_attempts) AS u(id, count_attempt)) i
    LEFT JOIN tasks k ON k.id = i.id
    ORDER BY k.created_at, i.id
  LOOP
    task_id := t.id;
    version := NULL;
    IF t.state IS DISTINCT FROM 'queued' THEN
      result := 'gone';
    ELSIF t.slots_held > 0 THEN
      IF t.count_attempt THEN
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
      IF held + ahead + need > p_limit THEN
        UPDATE tasks SET slots_wait_since = coalesce(slots_wait_since, now() AT TIME ZONE 'UTC') WHERE id = t.id;
        result := 'wait';
      ELSE
        UPDATE tasks SET slots_held = need, slots_wait_since = NULL, submit_attempts = submit_attempts + t.count_attempt::int,
          updated_at = now() AT TIME ZONE 'UTC'
        WHERE id = t.id
        RETURNING xmin::text INTO version;
        held := held + need;
        result := 'claimed';
      END IF;
    END IF;
    RETURN NEXT;
  END LOOP;
END
$$;
