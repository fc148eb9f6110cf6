-- AlterTable
ALTER TABLE "tasks" ADD COLUMN     "account_id" TEXT;

-- AlterTable (by hand: the counts so far are the environment account's, the only one there was)
ALTER TABLE "slot_counts" DROP CONSTRAINT "slot_counts_pkey",
ADD COLUMN     "account_id" TEXT NOT NULL DEFAULT 'env',
ADD CONSTRAINT "slot_counts_pkey" PRIMARY KEY ("account_id", "pool", "shard");
ALTER TABLE "slot_counts" ALTER COLUMN "account_id" DROP DEFAULT;

-- CreateTable
CREATE TABLE "upstream_accounts" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "base_url" TEXT NOT NULL,
    "api_key" TEXT,
    "access_key" TEXT,
    "secret_key" TEXT,
    "slot_limits" JSONB NOT NULL,
    "weight" INTEGER NOT NULL DEFAULT 1,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "disabled_reason" TEXT,
    "pool_health" JSONB NOT NULL DEFAULT '{}',
    "slot_caps" JSONB NOT NULL DEFAULT '{}',
    "refused_models" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "failures_in_row" INTEGER NOT NULL DEFAULT 0,
    "breaker_until" TIMESTAMP(3),
    "balance" JSONB,
    "balance_checked_at" TIMESTAMP(3),
    "packs_exhausted" BOOLEAN NOT NULL DEFAULT false,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "upstream_accounts_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "upstream_accounts_name_key" ON "upstream_accounts"("name");

-- AddForeignKey
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_account_id_fkey" FOREIGN KEY ("account_id") REFERENCES "upstream_accounts"("id") ON DELETE SET NULL ON UPDATE CASCADE;


-- Hand-written from here (Prisma's schema cannot express functions or triggers).

-- The environment's account: every task sent upstream so far went through it. Its limits follow the
-- environment (each slot claim passes them), so the values here are placeholders until the first claim.
INSERT INTO "upstream_accounts" ("id", "name", "base_url", "slot_limits")
VALUES ('env', 'env', '(environment)', '{"image": 10, "video": 10}');
UPDATE "tasks" SET "account_id" = 'env' WHERE "slots_held" > 0 OR "state" IN ('submitted', 'processing');

-- The slot counter, per (account, pool): a task's slots count against the account that holds them.
-- A write that moves slots between accounts (a task taken off an account that refused it) takes
-- them from the old key and adds them to the new one.
CREATE OR REPLACE FUNCTION "count_task_slots"() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  old_key TEXT[];
  new_key TEXT[];
  part RECORD;
BEGIN
  IF TG_OP <> 'INSERT' THEN old_key := ARRAY[coalesce(OLD.account_id, 'env'), OLD.pool]; END IF;
  IF TG_OP <> 'DELETE' THEN new_key := ARRAY[coalesce(NEW.account_id, 'env'), NEW.pool]; END IF;
  FOR part IN
    SELECT k[1] AS account_id, k[2] AS pool, sum(d)::bigint AS delta FROM (
      SELECT old_key AS k, -OLD.slots_held::bigint AS d WHERE old_key IS NOT NULL
      UNION ALL
      SELECT new_key, NEW.slots_held::bigint WHERE new_key IS NOT NULL
    ) parts GROUP BY k
  LOOP
    CONTINUE WHEN part.delta = 0;
    INSERT INTO slot_counts AS c (account_id, pool, shard, held)
    VALUES (part.account_id, part.pool, CASE WHEN part.delta > 0 THEN 0 ELSE 1 + (txid_current() % 127)::int END, part.delta)
    ON CONFLICT (account_id, pool, shard) DO UPDATE SET held = c.held + EXCLUDED.held;
  END LOOP;
  RETURN NULL;
END
$$;

DROP TRIGGER "tasks_count_slots_update" ON "tasks";
CREATE TRIGGER "tasks_count_slots_update" AFTER UPDATE OF "slots_held", "account_id" ON "tasks"
  FOR EACH ROW WHEN (OLD.slots_held IS DISTINCT FROM NEW.slots_held OR
                     (OLD.slots_held <> 0 AND OLD.account_id IS DISTINCT FROM NEW.account_id))
  EXECUTE FUNCTION "count_task_slots"();

-- The claim places each task on an account: one enabled, with the task's pool in rotation (or its
-- probe due), the task's model not refused there, and enough free
-- slots; among those, the most free slots times the weight. An account whose breaker is open
-- (5000-series answers or timeouts in a row) is the last resort: used only when no other fits, so
-- a deployment with one account keeps retrying it as before. Slots are counted per
-- (account, pool). No task overtakes an older one waiting in its pool: before a task is placed, the
-- older waiting tasks of the pool reserve, in order, the slots they need on the account with the
-- most free slots; one that fits nowhere yet reserves everything free on the largest account able
-- to hold it (it waits for that account to drain), or, when none is in rotation, all of it. With one
-- account this is the previous rule exactly. A task costing more than every enabled account's limit
-- (accepted before a limit was lowered) takes the largest limit instead of waiting forever.
-- p_env_pools/p_env_limits (or NULLs) keep the environment's account in step with this process's
-- environment; p_probe_ms is how long a pool taken out of rotation waits between probes: placing a
-- task on a pool whose probe is due makes that task the probe and moves the next one on.
DROP FUNCTION "claim_task_slots"(TEXT[], TEXT[], INTEGER[], BOOLEAN[]);

CREATE FUNCTION "claim_task_slots"(p_task_ids TEXT[], p_count_first BOOLEAN[], p_env_pools TEXT[], p_env_limits INTEGER[], p_probe_ms INTEGER)
RETURNS TABLE (task_id TEXT, result TEXT, counted BOOLEAN, version TEXT, task tasks)
LANGUAGE plpgsql AS $$
DECLARE
  t RECORD;
  w RECORD;
  ids TEXT[];
  lims INTEGER[];
  frees INTEGER[];
  weights INTEGER[];
  refuses BOOLEAN[];
  probing BOOLEAN[];
  broken BOOLEAN[];
  pass INTEGER;
  n INTEGER;
  i INTEGER;
  best INTEGER;
  max_limit INTEGER;
  need INTEGER;
  wneed INTEGER;
BEGIN
  PERFORM pg_advisory_xact_lock(461707669351); -- 0x6b6c696e67, "kling": one lock per deployment
  IF p_env_pools IS NOT NULL THEN
    INSERT INTO upstream_accounts AS a (id, name, base_url, slot_limits)
    VALUES ('env', 'env', '(environment)', (SELECT jsonb_object_agg(p, l) FROM unnest(p_env_pools, p_env_limits) u(p, l)))
    ON CONFLICT (id) DO UPDATE SET slot_limits = EXCLUDED.slot_limits, updated_at = now() AT TIME ZONE 'UTC'
      WHERE a.slot_limits IS DISTINCT FROM EXCLUDED.slot_limits;
  END IF;
  FOR t IN
    SELECT i.id, i.count_first, k.state, k.pool, k.model_name, k.slot_cost, k.slots_held, k.created_at, k.submit_attempts
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
      SELECT max((a.slot_limits ->> t.pool)::int) INTO max_limit FROM upstream_accounts a WHERE a.enabled;
      -- The pool's accounts in rotation, with their free slots (read again for every task: this
      -- call's own claims are already in the counter).
      SELECT array_agg(x.id ORDER BY x.id), array_agg(x.lim ORDER BY x.id), array_agg(greatest(x.lim - x.held, 0) ORDER BY x.id),
             array_agg(x.weight ORDER BY x.id), array_agg(x.refuses ORDER BY x.id), array_agg(x.probing ORDER BY x.id),
             array_agg(x.broken ORDER BY x.id)
      INTO ids, lims, frees, weights, refuses, probing, broken
      FROM (
        SELECT a.id, a.weight, t.model_name = ANY(a.refused_models) AS refuses, a.pool_health ? t.pool AS probing,
          coalesce(a.breaker_until > now() AT TIME ZONE 'UTC', false) AS broken,
          CASE WHEN (a.slot_caps -> t.pool ->> 'until')::timestamptz > now()
               THEN least((a.slot_limits ->> t.pool)::int, (a.slot_caps -> t.pool ->> 'limit')::int)
               ELSE (a.slot_limits ->> t.pool)::int END AS lim,
          (SELECT coalesce(sum(c.held), 0) FROM slot_counts c WHERE c.account_id = a.id AND c.pool = t.pool)::int AS held
        FROM upstream_accounts a
        WHERE a.enabled AND (a.slot_limits ->> t.pool)::int > 0
          AND (NOT a.pool_health ? t.pool OR (a.pool_health -> t.pool ->> 'probe_at')::timestamptz <= now())
      ) x;
      n := coalesce(array_length(ids, 1), 0);
      need := least(greatest(t.slot_cost, 1), coalesce(max_limit, 1));
      IF n > 0 THEN
        FOR w IN
          SELECT slot_cost FROM tasks
          WHERE pool = t.pool AND slots_wait_since IS NOT NULL AND state = 'queued' AND slots_held = 0
            AND (created_at, id) < (t.created_at, t.id)
          ORDER BY created_at, id
          LIMIT 100
        LOOP
          EXIT WHEN (SELECT sum(f) FROM unnest(frees) f) = 0;
          wneed := least(greatest(w.slot_cost, 1), coalesce(max_limit, 1));
          best := NULL;
          FOR i IN 1..n LOOP
            IF frees[i] >= wneed AND (best IS NULL OR frees[i] > frees[best]) THEN best := i; END IF;
          END LOOP;
          IF best IS NOT NULL THEN
            frees[best] := frees[best] - wneed;
          ELSE
            FOR i IN 1..n LOOP
              IF lims[i] >= wneed AND (best IS NULL OR lims[i] > lims[best]) THEN best := i; END IF;
            END LOOP;
            IF best IS NOT NULL THEN
              frees[best] := 0;
            ELSE
              FOR i IN 1..n LOOP frees[i] := 0; END LOOP;
            END IF;
          END IF;
        END LOOP;
      END IF;
      best := NULL;
      FOR pass IN 1..2 LOOP
        EXIT WHEN best IS NOT NULL;
        FOR i IN 1..n LOOP
          IF NOT refuses[i] AND frees[i] >= need AND broken[i] = (pass = 2)
             AND (best IS NULL OR frees[i] * weights[i] > frees[best] * weights[best]) THEN
            best := i;
          END IF;
        END LOOP;
      END LOOP;
      IF best IS NULL THEN
        UPDATE tasks SET slots_wait_since = coalesce(slots_wait_since, now() AT TIME ZONE 'UTC') WHERE id = t.id;
        counted := false;
        result := 'wait';
      ELSE
        UPDATE tasks SET slots_held = need, account_id = ids[best], slots_wait_since = NULL,
          submit_attempts = submit_attempts + counted::int, updated_at = now() AT TIME ZONE 'UTC'
        WHERE id = t.id
        RETURNING xmin::text INTO version;
        IF probing[best] THEN
          UPDATE upstream_accounts SET pool_health = jsonb_set(pool_health, ARRAY[t.pool, 'probe_at'],
            to_jsonb(now() + p_probe_ms * interval '1 millisecond'))
          WHERE id = ids[best];
        END IF;
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
