import { Client } from 'pg';
import type { SlotPool } from '../../src/kinds/kind';

export interface SlotPeaks {
  /** The most slots ever in use in `pool`, or in all pools together when none is named. */
  read(pool?: SlotPool): Promise<number>;
  drop(): Promise<void>;
}

/**
 * Records, from the database itself, the greatest number of slots ever in use, per pool and in all:
 * a trigger on the slot counter stores the totals as each writing transaction sees them right after
 * its own change. Claims are the only writers that add, and they serialise on their lock, so the
 * greatest total recorded is exactly the most any claim let be held at once; no sample can miss it.
 */
export async function recordSlotPeaks(databaseUrl: string): Promise<SlotPeaks> {
  const c = new Client({ connectionString: databaseUrl });
  await c.connect();
  await c.query(`
    CREATE TABLE test_slot_totals (pool TEXT NOT NULL, held BIGINT NOT NULL, all_pools BIGINT NOT NULL);
    CREATE FUNCTION test_record_slot_total() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO test_slot_totals
        SELECT NEW.pool, coalesce(sum(held) FILTER (WHERE pool = NEW.pool), 0), coalesce(sum(held), 0) FROM slot_counts;
      RETURN NULL;
    END $$;
    CREATE TRIGGER test_record_slot_total AFTER INSERT OR UPDATE ON slot_counts
      FOR EACH ROW EXECUTE FUNCTION test_record_slot_total();`);
  return {
    async read(pool) {
      const { rows } = pool
        ? await c.query('SELECT coalesce(max(held), 0) AS peak FROM test_slot_totals WHERE pool = $1', [pool])
        : await c.query('SELECT coalesce(max(all_pools), 0) AS peak FROM test_slot_totals');
      return Number(rows[0].peak);
    },
    async drop() {
      await c.query(`
        DROP TRIGGER test_record_slot_total ON slot_counts;
        DROP FUNCTION test_record_slot_total();
        DROP TABLE test_slot_totals;`);
      await c.end();
    },
  };
}
