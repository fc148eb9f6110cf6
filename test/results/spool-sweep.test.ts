import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spoolLeftoverAgeMs, sweepSpool } from '../../src/results/spool-sweep';
import { startHarness } from '../helpers/harness';
import { eventually } from '../helpers/invariants';

/**
 * A process killed between a download and its store leaves the spooled file behind. Every process
 * that starts clears such leftovers (and again every hour), by age alone: a file a live download is
 * still writing, or one just downloaded, is never touched.
 */
const HOUR = 3_600_000;
const roots: string[] = [];
afterAll(() => roots.forEach((r) => fs.rmSync(r, { recursive: true, force: true })));

/** A STORAGE_DIR whose spool holds a file of each given age (ms since its last write), named by it. */
function spoolWith(ages: Record<string, number>) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kt-spool-'));
  roots.push(root);
  const spool = path.join(root, '.spool');
  fs.mkdirSync(spool);
  for (const [name, age] of Object.entries(ages)) {
    const file = path.join(spool, name);
    fs.writeFileSync(file, 'partial download');
    const at = new Date(Date.now() - age);
    fs.utimesSync(file, at, at);
  }
  return { root, spool, left: () => fs.readdirSync(spool).sort() };
}

test('a starting process removes spool files older than the leftover age and keeps the newer ones', async () => {
  const { root, left } = spoolWith({ 'two-hours': 2 * HOUR, 'one-minute': 60_000, fresh: 0 });
  const h = await startHarness({ workers: false, env: { STORAGE_DIR: root } });
  try {
    await eventually('the leftover is swept', async () => !left().includes('two-hours'), 5000);
    expect(left()).toEqual(['fresh', 'one-minute']);
  } finally {
    await h.close();
  }
});

test('the leftover age follows STORAGE_DOWNLOAD_TIMEOUT_MS: twice the longest download, an hour at least', async () => {
  expect(spoolLeftoverAgeMs(300_000)).toBe(HOUR);
  expect(spoolLeftoverAgeMs(2 * HOUR)).toBe(4 * HOUR);
  // A download may run two hours: a file three hours old may be one just finished writing; five is not.
  const { root, left } = spoolWith({ 'five-hours': 5 * HOUR, 'three-hours': 3 * HOUR });
  const h = await startHarness({ workers: false, env: { STORAGE_DIR: root, STORAGE_DOWNLOAD_TIMEOUT_MS: String(2 * HOUR) } });
  try {
    await eventually('the leftover is swept', async () => !left().includes('five-hours'), 5000);
    expect(left()).toEqual(['three-hours']);
  } finally {
    await h.close();
  }
});

test('the sweep counts what it removed, leaves directories alone and finds nothing to do without a spool', async () => {
  const { spool, left } = spoolWith({ old: 2 * HOUR, 'old-too': 3 * HOUR, new: 0 });
  const dir = path.join(spool, 'a-directory');
  fs.mkdirSync(dir);
  fs.utimesSync(dir, new Date(0), new Date(0));
  expect(await sweepSpool(spool, HOUR)).toBe(2);
  expect(left()).toEqual(['a-directory', 'new']);
  expect(await sweepSpool(path.join(spool, 'missing'), HOUR)).toBe(0);
});
