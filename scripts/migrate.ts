// `npm run db:migrate`: creates the database if missing and applies pending migrations.
import { loadConfig } from '../src/config';
import { ensureDatabase, migrateDeploy } from '../src/db/migrate';

async function main() {
  const { DATABASE_URL } = loadConfig();
  if (await ensureDatabase(DATABASE_URL)) console.error('created the database');
  process.stdout.write(await migrateDeploy(DATABASE_URL));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
