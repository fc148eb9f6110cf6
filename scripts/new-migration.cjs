#!/usr/bin/env node
// Authors the next migration: `npm run db:migration -- add_something`.
//
// `prisma migrate dev` and `migrate diff --from-migrations` need a shadow database, which the
// offline WebAssembly schema engine cannot manage here (see README, "Development"). Instead, the
// schema as of the last migration is kept in prisma/migrations/schema.snapshot.prisma, and the new
// migration is the SQL diff from that snapshot to prisma/schema.prisma. The snapshot then moves on.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const name = process.argv[2];
if (!name || !/^[a-z0-9_]+$/.test(name)) {
  console.error('usage: npm run db:migration -- <name in snake_case>');
  process.exit(2);
}
const schema = path.join(root, 'prisma', 'schema.prisma');
const snapshot = path.join(root, 'prisma', 'migrations', 'schema.snapshot.prisma');
const from = fs.existsSync(snapshot) ? ['--from-schema-datamodel', snapshot] : ['--from-empty'];
const sql = execFileSync(
  process.execPath,
  [path.join(__dirname, 'prisma.cjs'), 'migrate', 'diff', ...from, '--to-schema-datamodel', schema, '--script'],
  // The diff needs no database, but the CLI's adapter opens one: the maintenance db always exists.
  { cwd: root, env: { ...process.env, DATABASE_URL: maintenanceUrl() }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
);
if (!/\b(CREATE|ALTER|DROP)\b/.test(sql)) {
  console.error('prisma/schema.prisma has no change since the last migration: nothing to do.');
  process.exit(1);
}
const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
const dir = path.join(root, 'prisma', 'migrations', `${stamp}_${name}`);
fs.mkdirSync(dir, { recursive: true });
fs.writeFileSync(path.join(dir, 'migration.sql'), sql);
fs.copyFileSync(schema, snapshot);
console.log(`wrote ${path.relative(root, dir)}/migration.sql and updated the schema snapshot`);

function maintenanceUrl() {
  const url = new URL(process.env.DATABASE_URL || 'postgresql://postgres:postgres@127.0.0.1:5432/kling_tracker');
  url.pathname = '/postgres';
  return url.toString();
}
