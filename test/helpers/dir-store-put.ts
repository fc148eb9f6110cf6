/**
 * `node --import tsx test/helpers/dir-store-put.ts ROOT KEY...`: stores one spooled file per key in
 * the directory store at ROOT, one after the other, and prints the spooled files' paths as JSON.
 * Run under strace by test/results/dir-store-durability.test.ts, which reads its system calls.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createDirBlobStore } from '../../src/results/dir-blob-store';

async function main(): Promise<void> {
  const [root, ...keys] = process.argv.slice(2);
  const store = createDirBlobStore(root);
  fs.mkdirSync(store.spoolDir, { recursive: true });
  const spooled: string[] = [];
  for (const [i, key] of keys.entries()) {
    const file = path.join(store.spoolDir, `spooled-${i}`);
    fs.writeFileSync(file, `object ${i}`);
    await store.putFile(key, file, 'image/png');
    spooled.push(file);
  }
  process.stdout.write(JSON.stringify(spooled));
}

void main();
