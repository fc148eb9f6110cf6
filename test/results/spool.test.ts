import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDirBlobStore } from '../../src/results/dir-blob-store';
import { createSpool } from '../../src/results/spool';

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'kt-spool-test-'));
afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

/** Makes a file through the spool, writes `text` and closes it; its path. */
async function write(spool: ReturnType<typeof createSpool>, text: string): Promise<string> {
  const { path: file, handle } = await spool.create();
  await handle.writeFile(text);
  await handle.close();
  return file;
}

test('the first file of a new spool makes its directory; each file is a new one of its own', async () => {
  const dir = path.join(base, 'new', '.spool');
  const spool = createSpool(dir);
  const first = await write(spool, 'one');
  const second = await write(spool, 'two');
  expect(path.dirname(first)).toBe(dir);
  expect(path.dirname(second)).toBe(dir);
  expect(first).not.toBe(second);
  expect(fs.readdirSync(dir).sort()).toEqual([path.basename(first), path.basename(second)].sort());
  expect(fs.readFileSync(first, 'utf8')).toBe('one');
});

test('a spool directory removed under a running process is made again by the next file', async () => {
  const dir = path.join(base, 'removed', '.spool');
  const spool = createSpool(dir);
  await write(spool, 'before');
  fs.rmSync(path.join(base, 'removed'), { recursive: true });
  const after = await write(spool, 'after');
  expect(fs.readFileSync(after, 'utf8')).toBe('after');
  expect(fs.readdirSync(dir)).toEqual([path.basename(after)]);
});

test('a spool that cannot be made is an error for the caller, not a file elsewhere', async () => {
  const blocker = path.join(base, 'blocker');
  fs.writeFileSync(blocker, 'a file where the spool directory would go');
  await expect(createSpool(path.join(blocker, '.spool')).create()).rejects.toMatchObject({ code: 'ENOTDIR' });
});

test('the directory store refuses a key that is not a blob key before its spool has a file for it', async () => {
  const root = path.join(base, 'store');
  const store = createDirBlobStore(root);
  await expect(store.putBytes('../outside', Buffer.from('bytes'), 'image/png')).rejects.toThrow('not a blob key');
  expect(fs.existsSync(store.spool.dir) ? fs.readdirSync(store.spool.dir) : []).toEqual([]);
  // A good key afterwards goes through the same spool.
  await store.putBytes(`ab/${'ab'.repeat(32)}`, Buffer.from('bytes'), 'image/png');
  expect(fs.readFileSync(path.join(root, 'ab', 'ab'.repeat(32)), 'utf8')).toBe('bytes');
  expect(fs.readdirSync(store.spool.dir)).toEqual([]);
});
