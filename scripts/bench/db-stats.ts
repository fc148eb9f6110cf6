import { createHash } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { ROOT } from './config';

/** Profile mode: what Postgres and Redis did per task, from their own statistics. */

export interface StatementStat {
  calls: number;
  totalMs: number;
  meanMs: number;
  /** Times the statement was planned (track_planning): equal to calls when no plan is reused. */
  plans: number;
  planMs: number;
  query: string;
}

const oneLine = (q: string) =>
  q
    .replace(/\s+/g, ' ')
    .replace(/"public"\./g, '')
    .trim()
    .slice(0, 150);

export async function withClient<T>(url: string, work: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return await work(c);
  } finally {
    await c.end();
  }
}

export const resetStatements = (dbUrl: string) =>
  withClient(dbUrl, async (c) => {
    await c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    await c.query('SELECT pg_stat_statements_reset()');
  });

/** The statements of this database by total execution time, and the totals. */
export function topStatements(
  dbUrl: string,
  limit = 15,
): Promise<{ calls: number; totalMs: number; plans: number; planMs: number; top: StatementStat[] }> {
  return withClient(dbUrl, async (c) => {
    const mine = "dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '%pg_stat_%'";
    const total = (
      await c.query(
        `SELECT coalesce(sum(calls), 0) AS calls, coalesce(sum(total_exec_time), 0) AS ms, coalesce(sum(plans), 0) AS plans,
           coalesce(sum(total_plan_time), 0) AS plan_ms FROM pg_stat_statements WHERE ${mine}`,
      )
    ).rows[0];
    const rows = (
      await c.query(
        `SELECT calls, total_exec_time AS ms, mean_exec_time AS mean, plans, total_plan_time AS plan_ms, query FROM pg_stat_statements WHERE ${mine} ORDER BY total_exec_time DESC LIMIT $1`,
        [limit],
      )
    ).rows;
    return {
      calls: Number(total.calls),
      totalMs: Number(total.ms),
      plans: Number(total.plans),
      planMs: Number(total.plan_ms),
      top: rows.map((r) => ({
        calls: Number(r.calls),
        totalMs: Number(r.ms),
        meanMs: Number(r.mean),
        plans: Number(r.plans),
        planMs: Number(r.plan_ms),
        query: oneLine(r.query),
      })),
    };
  });
}

export interface CommandStat {
  command: string;
  calls: number;
  usec: number;
}

/** INFO commandstats: calls and time per command since the last CONFIG RESETSTAT. */
export async function commandStats(redis: Redis): Promise<CommandStat[]> {
  const info = await redis.info('commandstats');
  return [...info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)]
    .map((m) => ({ command: m[1], calls: Number(m[2]), usec: Number(m[3]) }))
    .sort((a, b) => b.usec - a.usec);
}

/** BullMQ's Lua scripts by SHA1, to name the EVALSHA calls that MONITOR shows. */
function bullmqScripts(): Map<string, string> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const scripts = require(path.join(ROOT, 'node_modules/bullmq/dist/cjs/scripts/index.js')) as Record<
    string,
    { name: string; content: string }
  >;
  return new Map(Object.values(scripts).map((s) => [createHash('sha1').update(s.content).digest('hex'), s.name]));
}

/**
 * Watches every command for `ms` with MONITOR (a private Redis only: MONITOR is expensive) and
 * counts them by name; EVALSHA is named after the BullMQ script it runs, and commands run inside
 * scripts are counted apart ("lua: ..."). A raw socket: MONITOR's stream is plain lines such as
 * `+1700000000.123456 [0 127.0.0.1:5000] "EVALSHA" "<sha>" ...` or `[0 lua] "HGET" ...`.
 */
export async function monitorSample(url: string, ms: number): Promise<Map<string, number>> {
  const names = bullmqScripts();
  const counts = new Map<string, number>();
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  let buffer = '';
  socket.on('data', (chunk) => {
    buffer += chunk.toString('utf8');
    const lines = buffer.split('\r\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      const m = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"(?: "([^"]*)")?/.exec(line);
      if (!m) continue;
      const cmd = m[2].toLowerCase();
      let key = cmd === 'evalsha' ? `evalsha ${names.get(m[3] ?? '') ?? 'other script'}` : cmd;
      if (m[1] === 'lua') key = `lua: ${cmd}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  });
  socket.on('error', () => undefined);
  socket.write('MONITOR\r\n');
  await new Promise((r) => setTimeout(r, ms));
  socket.destroy();
  return counts;
}

/** The private Redis's SLOWLOG (over 1 ms), EVALSHA named after its BullMQ script. */
export async function namedSlowlog(redis: Redis, limit = 10): Promise<{ micros: number; command: string }[]> {
  const names = bullmqScripts();
  const entries = (await redis.call('SLOWLOG', 'GET', '1024')) as [number, number, number, string[]][];
  return entries
    .map(([, , micros, args]) => {
      const cmd = String(args[0]).toLowerCase();
      const what = cmd === 'evalsha' ? `evalsha ${names.get(String(args[1])) ?? 'other script'}` : args.slice(0, 2).join(' ');
      return { micros, command: what.slice(0, 100) };
    })
    .sort((a, b) => b.micros - a.micros)
    .slice(0, limit);
}
