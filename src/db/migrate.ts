import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..');

/** The same server, but its `postgres` maintenance database (always there). */
export function maintenanceUrl(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  url.pathname = '/postgres';
  return url.toString();
}

export function databaseName(databaseUrl: string): string {
  return decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
}

/**
 * Creates the database if it is missing: `prisma migrate deploy` through a driver adapter
 * refuses to ("Database `x` does not exist").
 */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const name = databaseName(databaseUrl);
  const client = new Client({ connectionString: maintenanceUrl(databaseUrl) });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount) return false;
    await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
    return true;
  } catch (err) {
    // Two processes starting together may both try; the loser sees "already exists".
    if ((err as { code?: string }).code === '42P04') return false;
    throw err;
  } finally {
    await client.end();
  }
}

/** Applies every pending migration in prisma/migrations with the offline Prisma CLI. */
export async function migrateDeploy(databaseUrl: string): Promise<string> {
  const { stdout, stderr } = await run(process.execPath, [path.join(ROOT, 'scripts', 'prisma.cjs'), 'migrate', 'deploy'], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: databaseUrl },
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout + stderr;
}

export function migrationNames(): string[] {
  const dir = path.join(ROOT, 'prisma', 'migrations');
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && fs.existsSync(path.join(dir, d.name, 'migration.sql')))
    .map((d) => d.name)
    .sort();
}

/** True when every migration in prisma/migrations is applied (cheap: one query, no CLI). */
export async function isUpToDate(databaseUrl: string): Promise<boolean> {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const table = await client.query(`SELECT to_regclass('public._prisma_migrations') AS t`);
    if (!table.rows[0].t) return false;
    const applied = await client.query(
      'SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL',
    );
    const done = new Set(applied.rows.map((r: { migration_name: string }) => r.migration_name));
    return migrationNames().every((m) => done.has(m));
  } finally {
    await client.end();
  }
}

/** Creates the database if needed and applies pending migrations; skips the CLI when none are pending. */
export async function prepareDatabase(databaseUrl: string): Promise<void> {
  await ensureDatabase(databaseUrl);
  if (await isUpToDate(databaseUrl)) return;
  await migrateDeploy(databaseUrl);
}
