import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { blobKey } from '../../src/results/blob-store';
import { builtScript } from '../helpers/built';

/**
 * The directory store syncs each object to the disk (its bytes, then its name) before reporting it
 * stored: the copy's record is committed right after, and a machine crash must not leave a recorded
 * object short, empty or missing. A crash cannot be staged here, so the store's system calls are
 * read, under strace (`-y` names each descriptor's path), and their order checked.
 */
const ROOT = path.resolve(__dirname, '..', '..');
const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'kt-dir-sync-')));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** The calls the helper made putting `keys` in the store at `store`, one per line (`[pid N] ` prefixes removed), and the spooled files' paths. */
function tracePuts(store: string, keys: string[], fromMemory = false): { calls: string[]; spooled: string[] } {
  const log = path.join(root, 'strace.log');
  const out = execFileSync(
    'strace',
    [
      '-f',
      '-qq',
      '-y',
      '-e',
      'trace=fsync,fdatasync,rename,renameat,renameat2',
      '-o',
      log,
      process.execPath,
      builtScript('test/helpers/dir-store-put.ts'),
      store,
      ...(fromMemory ? ['--bytes'] : []),
      ...keys,
    ],
    { cwd: ROOT, encoding: 'utf8' },
  );
  const calls = fs
    .readFileSync(log, 'utf8')
    .split('\n')
    .map((l) => l.replace(/^(\[pid\s+\d+\]\s*|\d+\s+)/, ''));
  return { calls, spooled: JSON.parse(out) as string[] };
}

/** Index of the first (or last) call that starts with `name(` and mentions every one of `parts`. */
const find = (calls: string[], name: string, parts: string[], last = false) => {
  const match = (l: string) => new RegExp(`^${name}\\(`).test(l) && parts.every((p) => l.includes(p));
  return last ? calls.findLastIndex(match) : calls.findIndex(match);
};
const RENAME = 'rename(?:at2?)?';

it("syncs the bytes before the rename, then the directory entry (and, with a new fan-out directory, its entry and the root's)", () => {
  const first = blobKey('ab'.padEnd(64, '1'));
  const second = blobKey('ab'.padEnd(64, '2'));
  const { calls, spooled } = tracePuts(root, [first, second]);
  const fanOut = path.join(root, 'ab');

  for (const [i, key] of [first, second].entries()) {
    const synced = find(calls, 'fdatasync', [`<${spooled[i]}>`]);
    const renamed = find(calls, RENAME, [spooled[i], path.join(root, key)], true);
    const dirSynced = calls.findIndex((l, at) => at > renamed && /^fsync\(/.test(l) && l.includes(`<${fanOut}>`));
    expect({ key, synced: synced >= 0, renamed: renamed >= 0, dirSynced: dirSynced >= 0 }).toEqual({
      key,
      synced: true,
      renamed: true,
      dirSynced: true,
    });
    expect(synced).toBeLessThan(renamed);
    // The second object's directory sync is after its own rename, not the first one's.
    if (i === 1) expect(dirSynced).toBeGreaterThan(find(calls, RENAME, [spooled[0]], true));
  }
  // The first put made the fan-out directory: its entry in the root, and the root's in its parent,
  // are synced after that rename.
  const firstRename = find(calls, RENAME, [spooled[0], path.join(root, first)], true);
  for (const dir of [root, path.dirname(root)])
    expect(calls.findIndex((l, at) => at > firstRename && /^fsync\(/.test(l) && l.includes(`<${dir}>`))).toBeGreaterThan(firstRename);
  expect(fs.readFileSync(path.join(root, first), 'utf8')).toBe('object 0');
  expect(fs.readFileSync(path.join(root, second), 'utf8')).toBe('object 1');
});

it('stores bytes from memory the same way: written and synced in its spool, renamed, then the directory entry synced', () => {
  // A new STORAGE_DIR, made by the first put's spool.
  const store = path.join(root, 'from-memory');
  const keys = [blobKey('cd'.padEnd(64, '1')), blobKey('cd'.padEnd(64, '2'))];
  const { calls } = tracePuts(store, keys, true);
  const fanOut = path.join(store, 'cd');
  for (const key of keys) {
    const renamed = find(calls, RENAME, [path.join(store, key)], true);
    expect(renamed).toBeGreaterThanOrEqual(0);
    const spoolFile = /"([^"]+)"/.exec(calls[renamed])![1];
    expect(path.dirname(spoolFile)).toBe(path.join(store, '.spool'));
    const synced = find(calls, 'fdatasync', [`<${spoolFile}>`]);
    expect(synced).toBeGreaterThanOrEqual(0);
    expect(synced).toBeLessThan(renamed);
    expect(calls.findIndex((l, at) => at > renamed && /^fsync\(/.test(l) && l.includes(`<${fanOut}>`))).toBeGreaterThan(renamed);
  }
  const firstRename = find(calls, RENAME, [path.join(store, keys[0])], true);
  for (const dir of [store, root])
    expect(calls.findIndex((l, at) => at > firstRename && /^fsync\(/.test(l) && l.includes(`<${dir}>`))).toBeGreaterThan(firstRename);
  expect(keys.map((key) => fs.readFileSync(path.join(store, key), 'utf8'))).toEqual(['object 0', 'object 1']);
  expect(fs.readdirSync(path.join(store, '.spool'))).toEqual([]);
});
