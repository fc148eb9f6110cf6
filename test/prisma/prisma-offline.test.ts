import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { maintenanceUrl, migrateDeploy } from '../../src/db/migrate';
import { TEST_DB_BASE } from '../helpers/databases';

/**
 * The Prisma toolchain, offline: a fresh clone must generate the client, apply every migration to
 * an empty database, and author the next migration with nothing but the npm registry's packages.
 * Any download attempt fails fast here: the proxy variables point at a closed port.
 */
const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..');
const OFFLINE = { HTTP_PROXY: 'http://127.0.0.1:9', HTTPS_PROXY: 'http://127.0.0.1:9', NO_PROXY: '127.0.0.1,localhost' };
const worker = process.env.JEST_WORKER_ID ?? '1';
const dbUrl = (suffix: string) => {
  const u = new URL(TEST_DB_BASE);
  u.pathname = `${u.pathname}_prisma_${suffix}_w${worker}`;
  return u.toString();
};

async function freshDatabase(url: string): Promise<void> {
  const admin = new Client({ connectionString: maintenanceUrl(url) });
  await admin.connect();
  const name = new URL(url).pathname.slice(1);
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
}

async function sql(url: string, text: string): Promise<unknown[]> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text)).rows;
  } finally {
    await c.end();
  }
}

/**
 * Indexes the migrations write by hand because Prisma 6's schema cannot declare them (partial
 * indexes, migrations `partial_task_indexes`, `unfinished_tasks_index`, `history_retention` and
 * `external_id_partial_index`): everything else must be exactly schema.prisma's.
 */
const HAND_WRITTEN_INDEXES: Record<string, string> = {
  tasks_polled_idx: 'ON public.tasks USING btree (next_poll_at) WHERE (next_poll_at IS NOT NULL)',
  tasks_waiting_for_slots_idx: 'ON public.tasks USING btree (pool, created_at, id) WHERE (slots_wait_since IS NOT NULL)',
  tasks_external_id_key: 'ON public.tasks USING btree (tenant_id, external_task_id) WHERE (external_task_id IS NOT NULL)',
  tasks_unfinished_idx:
    "ON public.tasks USING btree (tenant_id) WHERE (state = ANY (ARRAY['queued'::task_state, 'submitted'::task_state, 'processing'::task_state]))",
  webhook_deliveries_finished_idx: "ON public.webhook_deliveries USING btree (updated_at) WHERE (status <> 'pending'::delivery_status)",
};
const handWritten = `(${Object.keys(HAND_WRITTEN_INDEXES)
  .map((n) => `'${n}'`)
  .join(', ')})`;

/** Everything that makes up the schema, in a comparable form (the migrations table and hand-written indexes aside). */
async function describeSchema(url: string) {
  const skip = `NOT IN ('_prisma_migrations')`;
  return {
    columns: await sql(
      url,
      `SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default FROM information_schema.columns WHERE table_schema = 'public' AND table_name ${skip} ORDER BY 1, 2`,
    ),
    indexes: await sql(
      url,
      `SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename ${skip} AND indexname NOT IN ${handWritten} ORDER BY 1, 2`,
    ),
    constraints: await sql(
      url,
      `SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text ${skip} ORDER BY 1, 2`,
    ),
    enums: await sql(
      url,
      `SELECT t.typname, e.enumlabel, e.enumsortorder FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid ORDER BY 1, 3`,
    ),
  };
}

const prismaCli = (cwd: string, args: string[], databaseUrl: string) =>
  run(process.execPath, [path.join(cwd, 'scripts', 'prisma.cjs'), ...args], {
    cwd,
    env: { ...process.env, ...OFFLINE, DATABASE_URL: databaseUrl },
  });

const tempDirs: string[] = [];
const tempDir = (prefix: string) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
};
afterAll(() => tempDirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe('Prisma, offline', () => {
  jest.setTimeout(120_000);

  it('generates the client from the schema without downloading anything', async () => {
    const out = tempDir('kt-generate-');
    const schema = path.join(out, 'schema.prisma');
    fs.writeFileSync(
      schema,
      fs.readFileSync(path.join(ROOT, 'prisma', 'schema.prisma'), 'utf8').replace('../src/generated/prisma', path.join(out, 'client')),
    );
    const { stdout, stderr } = await prismaCli(ROOT, ['generate', '--schema', schema], dbUrl('gen'));
    expect(stdout + stderr).toContain('Generated Prisma Client');
    const client = fs.readFileSync(path.join(out, 'client', 'client.ts'), 'utf8');
    expect(client).toContain('export const PrismaClient');
    const models = [...fs.readFileSync(schema, 'utf8').matchAll(/^model (\w+) \{/gm)].map((m) => `${m[1]}.ts`);
    expect(models.length).toBeGreaterThanOrEqual(3);
    expect(fs.readdirSync(path.join(out, 'client', 'models')).sort()).toEqual(models.sort());
  });

  it('applies every migration to an empty database, giving exactly the schema of schema.prisma', async () => {
    const migrated = dbUrl('migrated');
    const direct = dbUrl('direct');
    await freshDatabase(migrated);
    await freshDatabase(direct);
    expect(await migrateDeploy(migrated)).toMatch(/All migrations have been successfully applied/);
    // The reference: the SQL Prisma derives straight from schema.prisma.
    const { stdout: script } = await prismaCli(
      ROOT,
      ['migrate', 'diff', '--from-empty', '--to-schema-datamodel', 'prisma/schema.prisma', '--script'],
      maintenanceUrl(direct),
    );
    await sql(direct, script);
    const [a, b] = [await describeSchema(migrated), await describeSchema(direct)];
    expect(a.columns.length).toBeGreaterThan(20);
    expect(a).toEqual(b);
    // The hand-written indexes exist as written, and only in the migrations.
    const extra = (await sql(migrated, `SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN ${handWritten}`)) as {
      indexname: string;
      indexdef: string;
    }[];
    expect(Object.fromEntries(extra.map((i) => [i.indexname, i.indexdef.replace(/^.* ON /, 'ON ')]))).toEqual(HAND_WRITTEN_INDEXES);
    expect(await sql(direct, `SELECT 1 FROM pg_indexes WHERE indexname IN ${handWritten}`)).toEqual([]);
  });

  it('authors the next migration from a schema change, and that migration applies', async () => {
    const project = tempDir('kt-author-');
    for (const item of ['prisma', 'scripts', 'prisma.config.ts'])
      fs.cpSync(path.join(ROOT, item), path.join(project, item), { recursive: true });
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(project, 'node_modules'));
    const schemaFile = path.join(project, 'prisma', 'schema.prisma');
    fs.writeFileSync(
      schemaFile,
      fs
        .readFileSync(schemaFile, 'utf8')
        .replace('  slotCost          Int       @map("slot_cost")\n', '  slotCost          Int       @map("slot_cost")\n  note String?\n'),
    );
    const before = fs.readdirSync(path.join(project, 'prisma', 'migrations'));

    await run(process.execPath, [path.join(project, 'scripts', 'new-migration.cjs'), 'add_note'], {
      cwd: project,
      env: { ...process.env, ...OFFLINE },
    });

    const added = fs.readdirSync(path.join(project, 'prisma', 'migrations')).filter((d) => !before.includes(d));
    expect(added).toHaveLength(1);
    expect(added[0]).toMatch(/^\d{14}_add_note$/);
    const migrationSql = fs.readFileSync(path.join(project, 'prisma', 'migrations', added[0], 'migration.sql'), 'utf8');
    expect(migrationSql).toMatch(/ALTER TABLE "tasks" ADD COLUMN\s+"note" TEXT/);
    const target = dbUrl('authored');
    await freshDatabase(target);
    await prismaCli(project, ['migrate', 'deploy'], target);
    const cols = await sql(
      target,
      `SELECT column_name FROM information_schema.columns WHERE table_name = 'tasks' AND column_name = 'note'`,
    );
    expect(cols).toHaveLength(1);
    // Nothing left to author: the snapshot moved on with the migration.
    await expect(
      run(process.execPath, [path.join(project, 'scripts', 'new-migration.cjs'), 'again'], {
        cwd: project,
        env: { ...process.env, ...OFFLINE },
      }),
    ).rejects.toThrow(/no change/);
  });

  it('has no schema change waiting for a migration in this repository', () => {
    const schema = fs.readFileSync(path.join(ROOT, 'prisma', 'schema.prisma'), 'utf8');
    const snapshot = fs.readFileSync(path.join(ROOT, 'prisma', 'migrations', 'schema.snapshot.prisma'), 'utf8');
    expect(snapshot).toBe(schema);
  });
});
