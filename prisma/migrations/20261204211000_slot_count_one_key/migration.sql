-- Hand-written: the slot counter's trigger (migration `upstream_accounts`) goes straight to its one
-- write when a change keeps the task on its account and pool, as both changes of every task do
-- (the claim that gives it slots, the end that frees them): its query that adds up the deltas per
-- key, with its loop, was most of the trigger's time. A move between accounts or pools, an insert
-- and a delete take the general path, as before.
CREATE OR REPLACE FUNCTION "count_task_slots"() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  old_key TEXT[];
  new_key TEXT[];
  delta BIGINT;
  part RECORD;
BEGIN
  IF TG_OP = 'UPDATE' AND coalesce(OLD.account_id, 'env') = coalesce(NEW.account_id, 'env') AND OLD.pool = NEW.pool THEN
    delta := NEW.slots_held::bigint - OLD.slots_held::bigint;
    IF delta <> 0 THEN
      INSERT INTO slot_counts AS c (account_id, pool, shard, held)
      VALUES (coalesce(NEW.account_id, 'env'), NEW.pool, CASE WHEN delta > 0 THEN 0 ELSE 1 + (txid_current() % 127)::int END, delta)
      ON CONFLICT (account_id, pool, shard) DO UPDATE SET held = c.held + EXCLUDED.held;
    END IF;
    RETURN NULL;
  END IF;
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
