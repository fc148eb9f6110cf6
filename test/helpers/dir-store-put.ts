/**
 * `node <this file, compiled by built.ts> ROOT [--bytes] KEY...`: stores one object per key
 * in the directory store at ROOT, one after the other (`object <i>`: a spooled file, or with
 * `--bytes` bytes from memory), and prints the spooled files' paths as JSON (empty for `--bytes`,
 * whose spool files the store names). Run under strace by test/results/dir-store-durability.test.ts,
 * which reads its system calls.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createDirBlobStore } from '../../src/results/dir-blob-store';

async function main(): Promise<void> {
  const [root, ...rest] = process.argv.slice(2);
  const fromMemory = rest[0] === '--bytes';
  const keys = fromMemory ? rest.slice(1) : rest;
  const store = createDirBlobStore(root);
  // Bytes from memory need no spool before the store's first put: it makes its own.
  if (!fromMemory) fs.mkdirSync(store.spool.dir, { recursive: true });
  const spooled: string[] = [];
  for (const [i, key] of keys.entries()) {
    if (fromMemory) {
      await store.putBytes(key, Buffer.from(`object ${i}`), 'image/png');
      spooled.push('');
      continue;
    }
    const file = path.join(store.spool.dir, `spooled-${i}`);
    fs.writeFileSync(file, `object ${i}`);
    await store.putFile(key, file, 'image/png');
    spooled.push(file);
  }
  process.stdout.write(JSON.stringify(spooled));
}

void main();
