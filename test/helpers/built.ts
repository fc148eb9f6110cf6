import fs from 'node:fs';
import path from 'node:path';
import { buildSync } from 'esbuild';

const ROOT = path.resolve(__dirname, '..', '..');

/**
 * Where the suite's child processes run from: the project's TypeScript compiled once per jest run
 * (by globalSetup) into JavaScript, file by file, with the same layout. Starting a child through tsx
 * costs about a second of CPU more than starting its compiled JavaScript (tsx inspects every module
 * it loads, dependencies included), and the suite starts about a hundred of them. What tsx itself
 * runs is covered where it matters: `npm start` (test/e2e/npm-start.test.ts) and the soak's processes.
 */
export const BUILD_DIR = path.join(ROOT, 'node_modules', '.cache', 'kt-test-build');

/**
 * What the compiled code finds beside itself by path (its __dirname): linked to the real files. A
 * linked script runs from its real place (Node resolves the link), so what it reads beside itself
 * (prisma.cjs: its preload, prisma.config.ts) needs no link of its own.
 */
const LINKED = ['prisma', 'console', 'scripts/prisma.cjs', 'src/kinds/video/assets'];

/** Compiles src/, workers/, scripts/ and test/helpers/ into BUILD_DIR (well under a second). */
export function buildForChildren(): void {
  fs.rmSync(BUILD_DIR, { recursive: true, force: true });
  const entryPoints = ['src', 'workers', 'scripts', path.join('test', 'helpers')].flatMap((dir) => typeScriptFiles(path.join(ROOT, dir)));
  buildSync({ entryPoints, outbase: ROOT, outdir: BUILD_DIR, format: 'cjs', platform: 'node', target: 'node20', logLevel: 'error' });
  for (const link of LINKED) {
    fs.mkdirSync(path.dirname(path.join(BUILD_DIR, link)), { recursive: true });
    fs.symlinkSync(path.join(ROOT, link), path.join(BUILD_DIR, link));
  }
}

/** The compiled form of a project script (`src/main.ts` -> `.../src/main.js`), as built by buildForChildren. */
export function builtScript(script: string): string {
  return path.join(BUILD_DIR, script.replace(/\.ts$/, '.js'));
}

function typeScriptFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((f) => f.isFile() && f.name.endsWith('.ts') && !f.name.endsWith('.d.ts'))
    .map((f) => path.join(f.parentPath, f.name));
}
