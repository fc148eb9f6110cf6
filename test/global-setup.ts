import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { maintenanceUrl, migrateDeploy, migrationNames } from '../src/db/migrate';
import { buildForChildren } from './helpers/built';
import { TEST_DB_BASE, WORKER_DBS, workerDatabaseUrl } from './helpers/databases';

/**
 * One migrated template database, then one copy per jest worker (CREATE DATABASE ... TEMPLATE is
 * a file copy: milliseconds). The template is rebuilt only when the migrations change.
 */
export default async function globalSetup(): Promise<void> {
  buildForChildren();
  const admin = new Client({ connectionString: maintenanceUrl(TEST_DB_BASE) });
  await admin.connect();
  try {
    const template = `${dbName(TEST_DB_BASE)}_template`;
    const hash = migrationsHash();
    const existing = await admin.query(`SELECT shobj_description(oid, 'pg_database') AS hash FROM pg_database WHERE datname = $1`, [
      template,
    ]);
    if (existing.rows[0]?.hash !== hash) {
      await admin.query(`DROP DATABASE IF EXISTS "${template}" WITH (FORCE)`);
      await admin.query(`CREATE DATABASE "${template}"`);
      const url = new URL(TEST_DB_BASE);
      url.pathname = `/${template}`;
      await migrateDeploy(url.toString());
      await admin.query(`COMMENT ON DATABASE "${template}" IS '${hash}'`);
    }
    for (let w = 1; w <= WORKER_DBS; w++) {
      const name = dbName(workerDatabaseUrl(w));
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
    }
  } finally {
    await admin.end();
  }
}

function dbName(url: string): string {
  return new URL(url).pathname.slice(1);
}

function migrationsHash(): string {
  const h = createHash('sha256');
  for (const m of migrationNames()) {
    h.update(m).update(fs.readFileSync(path.join(__dirname, '..', 'prisma', 'migrations', m, 'migration.sql')));
  }
  return h.digest('hex').slice(0, 32);
}
