import { Client } from 'pg';
import { databaseName, maintenanceUrl } from '../../src/db/migrate';

/**
 * A sampling profiler for Postgres that needs no extension (the shared server does not preload
 * pg_stat_statements): every `intervalMs` it looks at what the connections of one database are
 * doing. The share of samples a statement is seen in is its share of database time, lock waits
 * included, which pg_stat_statements would not show.
 */
export interface PgSample {
  /** What the backend was waiting on, or "running" (on CPU or not waiting on anything named). */
  wait: string;
  query: string;
  samples: number;
}

export interface PgSampler {
  stop(): Promise<{ samples: number; top: PgSample[]; activeAvg: number }>;
}

// Literals and parameters out, whitespace folded: one row per statement shape.
const normalise = (q: string) =>
  q
    .replace(/\s+/g, ' ')
    .replace(/'[^']*'/g, '?')
    .replace(/\$\d+/g, '$')
    .replace(/"public"\./g, '')
    .trim()
    .slice(0, 160);

export async function startPgSampler(url: string, intervalMs = 50): Promise<PgSampler> {
  // Connected to the maintenance database, so that its own backend is not one of those measured.
  const client = new Client({ connectionString: maintenanceUrl(url) });
  await client.connect();
  const name = databaseName(url);
  const counts = new Map<string, PgSample>();
  let ticks = 0;
  let active = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      const rows = (
        await client.query(
          `SELECT state, wait_event_type, wait_event, query FROM pg_stat_activity
           WHERE datname = $1 AND pid <> pg_backend_pid() AND state <> 'idle' AND backend_type = 'client backend'`,
          [name],
        )
      ).rows as { state: string; wait_event_type: string | null; wait_event: string | null; query: string }[];
      ticks++;
      for (const r of rows) {
        active++;
        // "idle in transaction": the client holds a transaction open between two statements.
        const wait =
          r.state === 'idle in transaction'
            ? 'client (idle in transaction)'
            : r.wait_event_type
              ? `${r.wait_event_type}:${r.wait_event}`
              : 'running';
        const key = `${wait}|${normalise(r.query)}`;
        const entry = counts.get(key) ?? { wait, query: normalise(r.query), samples: 0 };
        entry.samples++;
        counts.set(key, entry);
      }
      await new Promise((r) => setTimeout(r, Math.max(0, intervalMs - (Date.now() - started))));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      await client.end();
      const top = [...counts.values()].sort((a, b) => b.samples - a.samples).slice(0, 12);
      return { samples: ticks, top, activeAvg: ticks ? active / ticks : 0 };
    },
  };
}
