import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { startHarness, type Harness } from '../helpers/harness';
import { bearer } from '../helpers/fixtures';
import { runCli } from '../helpers/processes';

// Each CLI run is a process of its own: several of them outlast jest's default under load.
jest.setTimeout(120_000);

const storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kt-backfill-'));
let h: Harness;

// Tasks succeed here with the upstream's URLs and no copies, as they did before copies existed.
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
  fs.rmSync(storageDir, { recursive: true, force: true });
});

const cli = async (...args: string[]) => {
  const { code, stdout } = await runCli(args, { ...h.env, STORAGE_DIR: storageDir });
  return { code, out: stdout };
};
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('npm run cli -- results backfill', () => {
  it('copies the results of tasks that succeeded without copies, resumes where a run stopped, and honours --since', async () => {
    const { api_key } = await h.newTenant('before copies');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(
        (
          await request(h.url)
            .post('/v1/images/generations')
            .set(bearer(api_key))
            .send({ prompt: `old ${i}` })
            .expect(200)
        ).body.data.task_id,
      );
    }
    for (const id of ids) await h.waitForTask(id, (t) => t.state === 'succeed');
    expect(await h.api.db.task.count({ where: { id: { in: ids }, filesState: null } })).toBe(3);
    // RESULT_URLS=upstream: nothing copied, and the task object exactly as before (no `files`).
    expect(await h.api.db.resultFile.count()).toBe(0);
    const shown = (await request(h.url).get(`/v1/images/generations/${ids[0]}`).set(bearer(api_key)).expect(200)).body.data;
    expect(shown.tracker).not.toHaveProperty('files');

    expect(JSON.parse((await cli('results', 'backfill', '--since', '2999-01-01')).out)).toEqual({ stored: 0, failed: 0 });

    // One upstream URL answers 404 in the first run: that task fails, the others are copied.
    const broken = await h.api.db.task.findUniqueOrThrow({ where: { id: ids[1] } });
    const result = broken.result as { images: { index: number; url: string }[] };
    const good = result.images[0].url;
    await h.api.db.task.update({
      where: { id: ids[1] },
      data: { result: { images: [{ index: 0, url: good.replace(/0\.png$/, '7.png') }] } },
    });
    const first = await cli('results', 'backfill');
    expect(first.code).toBe(1);
    expect(JSON.parse(first.out)).toEqual({ stored: 2, failed: 1 });

    await h.api.db.task.update({ where: { id: ids[1] }, data: { result } });
    expect(JSON.parse((await cli('results', 'backfill')).out)).toEqual({ stored: 1, failed: 0 });
    expect(JSON.parse((await cli('results', 'backfill')).out)).toEqual({ stored: 0, failed: 0 });

    for (const id of ids) {
      const task = await h.api.db.task.findUniqueOrThrow({ where: { id } });
      expect(task.filesState).toBe('stored');
      const file = await h.api.db.resultFile.findFirstOrThrow({ where: { taskId: id } });
      const upstream = Buffer.from(await (await fetch((task.result as { images: { url: string }[] }).images[0].url)).arrayBuffer());
      expect(file.sha256).toBe(sha256(upstream));
      expect(fs.readFileSync(path.join(storageDir, file.storageKey)).equals(upstream)).toBe(true);
    }
  });
});

describe('npm run cli -- keys create --retention-days', () => {
  it("records the tenant's retention of copies, and refuses a value that is not a whole number of days", async () => {
    const made = await cli('keys', 'create', '--name', 'short memory', '--retention-days', '5');
    expect(made.code).toBe(0);
    const { id } = JSON.parse(made.out);
    expect((await h.api.db.tenant.findUniqueOrThrow({ where: { id } })).resultRetentionDays).toBe(5);
    const defaulted = JSON.parse((await cli('keys', 'create', '--name', 'forever')).out);
    expect((await h.api.db.tenant.findUniqueOrThrow({ where: { id: defaulted.id } })).resultRetentionDays).toBeNull();
    for (const bad of ['0', '-1', '2.5', 'week'])
      expect((await cli('keys', 'create', '--name', 'x', `--retention-days=${bad}`)).code).toBe(2);
  });
});
