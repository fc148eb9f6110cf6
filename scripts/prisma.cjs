#!/usr/bin/env node
// Runs the Prisma CLI offline. Usage: node scripts/prisma.cjs <generate|migrate ...|studio [args]>
//
// Why this wrapper: the 6.19 CLI checks for native engine files at start and downloads them when
// missing, which fails without internet. With `engine: 'js'` (prisma.config.ts) it never uses
// them, so pointing the variables at any existing file stops the download. Studio comes from the
// 7.x CLI (alias `prisma7`), whose Studio needs no engine; the 6.19 one does. Both packages
// declare the `prisma` bin, so each is called by path, never through `npx prisma`.
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
// Like `npm start`, read ./.env when there is one (variables already set win).
const dotenv = path.join(root, '.env');
if (require('node:fs').existsSync(dotenv)) process.loadEnvFile(dotenv);
const env = {
  ...process.env,
  PRISMA_QUERY_ENGINE_LIBRARY: process.env.PRISMA_QUERY_ENGINE_LIBRARY || process.execPath,
  PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY || process.execPath,
  CHECKPOINT_DISABLE: '1',
  PRISMA_HIDE_UPDATE_MESSAGE: '1',
};
if (!env.DATABASE_URL) env.DATABASE_URL = 'postgresql://postgres:postgres@127.0.0.1:5432/kling_tracker';

const studio = args[0] === 'studio';
const cli = path.join(root, 'node_modules', studio ? 'prisma7' : 'prisma', 'build', 'index.js');
const cliArgs = studio ? ['studio', '--config', path.join(root, 'prisma', 'studio.config.ts'), ...args.slice(1)] : args;
const preload = studio ? [] : ['--require', path.join(__dirname, 'unref-long-timers.cjs')];
const r = spawnSync(process.execPath, [...preload, cli, ...cliArgs], { cwd: root, env, stdio: 'inherit' });
process.exit(r.status ?? 1);
