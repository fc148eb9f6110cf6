-- Task kinds (image generation, text-to-video, image-to-video: src/kinds/registry.ts). Written by
-- hand around what Prisma's diff would generate, which drops `n` and `images`: every existing task,
-- event and delivery is kept, and becomes an image generation task.

-- Columns: the kind and its slot pool; `n` becomes the generic slot cost; `images` the generic
-- result, which holds the kind's `task_result` as clients see it.
ALTER TABLE "tasks" ADD COLUMN "kind" TEXT NOT NULL DEFAULT 'image-generation',
                    ADD COLUMN "pool" TEXT NOT NULL DEFAULT 'image';
ALTER TABLE "tasks" ALTER COLUMN "kind" DROP DEFAULT, ALTER COLUMN "pool" DROP DEFAULT;
ALTER TABLE "tasks" RENAME COLUMN "n" TO "slot_cost";
ALTER TABLE "tasks" RENAME COLUMN "images" TO "result";
UPDATE "tasks" SET "result" = jsonb_build_object('images', "result") WHERE "result" IS NOT NULL;

-- A tenant's list is per kind, newest first.
DROP INDEX "tasks_tenant_id_created_at_idx";
CREATE INDEX "tasks_tenant_id_kind_created_at_id_idx" ON "tasks"("tenant_id", "kind", "created_at" DESC, "id" DESC);

-- Hand-written (Prisma's schema cannot express triggers, functions or partial indexes): the slot
-- counter, the claim and the waiters' index, per pool. Kling counts concurrency separately per
-- resource-pack type, so an image backlog never delays a video task and the reverse.
ALTER TABLE "slot_counts" ADD COLUMN "pool" TEXT NOT NULL DEFAULT 'image';
ALTER TABLE "slot_counts" ALTER COLUMN "pool" DROP DEFAULT;
ALTER TABLE "slot_counts" DROP CONSTRAINT "slot_counts_pkey", ADD CONSTRAINT "slot_counts_pkey" PRIMARY KEY ("pool", "shard");

CREATE OR REPLACE FUNCTION "count_task_slots"() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  delta BIGINT := CASE TG_OP
    WHEN 'INSERT' THEN NEW.slots_held
    WHEN 'DELETE' THEN -OLD.slots_held
    ELSE NEW.slots_held - OLD.slots_held END;
BEGIN
  INSERT INTO slot_counts AS c (pool, shard, held)
  VALUES (CASE TG_OP WHEN 'DELETE' THEN OLD.pool ELSE NEW.pool END,
          CASE WHEN delta > 0 THEN 0 ELSE 1 + (txid_current() % 127)::int END, delta)
  ON CONFLICT (pool, shard) DO UPDATE SET held = c.held + EXCLUDED.held;
  RETURN NULL;
END
$$;

DROP INDEX "tasks_waiting_for_slots_idx";
CREATE INDEX "tasks_waiting_for_slots_idx" ON "tasks"("pool", "created_at", "id") WHERE "slots_wait_since" IS NOT NULL;

-- The claim, per pool: each task is counted against its own pool's limit (p_pools[i] has
-- p_limits[i]), with the slots in use and the older waiting tasks of that pool only. Same answer
-- as before (see migration `slot_counter`); the lock stays one for the deployment (claims are short).
DROP FUNCTION "claim_task_slots"(TEXT[], INTEGER, BOOLEAN[]);

CREATE FUNCTION "claim_task_slots"(p_task_ids TEXT[], p_pools TEXT[], p_limits INTEGER[], p_count_first BOOLEAN[])
RETURNS TABLE (task_id TEXT, result TEXT, counted BOOLEAN, version TEXT, task tasks)
LANGUAGE plpgsql AS $$
DECLARE
  t RECORD;
  lim INTEGER;
  need INTEGER;
  in_use BIGINT;
  ahead BIGINT;
  used JSONB := '{}'::jsonb;
BEGIN
  PERFORM pg_advisory_xact_lock(461707669351); -- 0x6b6c696e67, "kling": one lock per deployment
  FOR t IN
    SELECT i.id, i.count_first, k.state, k.pool, k.slot_cost, k.slots_held, k.created_at, k.submit_attempts
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
      lim := p_limits[array_position(p_pools, t.pool)];
      IF lim IS NULL THEN
        RAISE EXCEPTION 'claim_task_slots: no limit given for pool %', t.pool;
      END IF;
      IF NOT used ? t.pool THEN
        used := used || jsonb_build_object(t.pool, (SELECT coalesce(sum(c.held), 0) FROM slot_counts c WHERE c.pool = t.pool));
      END IF;
      in_use := (used ->> t.pool)::bigint;
      need := least(greatest(t.slot_cost, 1), lim);
      SELECT coalesce(sum(least(greatest(w.slot_cost, 1), lim)), 0) INTO ahead FROM (
        SELECT slot_cost FROM tasks
        WHERE pool = t.pool AND slots_wait_since IS NOT NULL AND state = 'queued' AND slots_held = 0
          AND (created_at, id) < (t.created_at, t.id)
        ORDER BY created_at, id
        LIMIT lim
      ) w;
      IF in_use + ahead + need > lim THEN
        UPDATE tasks SET slots_wait_since = coalesce(slots_wait_since, now() AT TIME ZONE 'UTC') WHERE id = t.id;
        counted := false;
        result := 'wait';
      ELSE
        UPDATE tasks SET slots_held = need, slots_wait_since = NULL, submit_attempts = submit_attempts + counted::int,
          updated_at = now() AT TIME ZONE 'UTC'
        WHERE id = t.id
        RETURNING xmin::text INTO version;
        used := jsonb_set(used, ARRAY[t.pool], to_jsonb(in_use + need));
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
