import { Client } from 'pg';
import { TABLE_COLUMNS } from '../../src/db/columns';

/**
 * The raw-SQL reads select each table's columns from one list (src/db/columns.ts): a column a
 * migration adds and the list misses would silently be absent from those rows.
 */
describe('the column map of raw reads', () => {
  it.each(Object.keys(TABLE_COLUMNS) as (keyof typeof TABLE_COLUMNS)[])('lists exactly the columns of %s', async (table) => {
    const c = new Client({ connectionString: process.env.DATABASE_URL });
    await c.connect();
    try {
      const { rows } = await c.query<{ column_name: string }>(
        `SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1`,
        [table],
      );
      expect([...TABLE_COLUMNS[table]].sort()).toEqual(rows.map((r) => r.column_name).sort());
    } finally {
      await c.end();
    }
  });
});
