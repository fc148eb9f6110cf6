import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import type { Browser } from 'playwright-core';
import { bearer } from '../helpers/fixtures';
import { launchChromium, SCREENSHOTS } from '../helpers/browser';
import { startHarness, type Harness } from '../helpers/harness';
import { freePort } from '../helpers/processes';

/**
 * What operators and integrators look at, in a real headless Chromium (Debian's, driven by
 * playwright-core): the API reference, the queue dashboard and Prisma Studio each show real
 * content. Screenshots land in test-results/screenshots, or in SCREENSHOTS_DIR:
 * `npm run docs:screenshots` refreshes docs/screenshots (linked from the README), so a test run
 * leaves the checkout as it was.
 */
jest.setTimeout(120_000);

const ROOT = path.resolve(__dirname, '..', '..');
const ADMIN = 'browser-admin-token-0123456789';

let h: Harness;
let browser: Browser;

beforeAll(async () => {
  h = await startHarness({ env: { ADMIN_TOKEN: ADMIN } });
  browser = await launchChromium();
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
  await h.close();
});

describe('pages in a real browser', () => {
  it('/docs shows the interactive API reference with the endpoints', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${h.url}/docs`);
    await page.getByText('/v1/images/generations/{id}/cancel').first().waitFor({ timeout: 20_000 });
    expect(await page.getByText('/v1/images/generations', { exact: true }).count()).toBeGreaterThan(0);
    // Show the endpoints, not just the introduction.
    await page.getByText('/v1/images/generations/{id}/cancel').first().scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(SCREENSHOTS, 'docs.png') });
    await page.close();
  });

  it('/admin/queues shows the queues to an operator with the admin token', async () => {
    const context = await browser.newContext({
      httpCredentials: { username: 'admin', password: ADMIN },
      viewport: { width: 1280, height: 800 },
    });
    const page = await context.newPage();
    await page.goto(`${h.url}/admin/queues`);
    await page.getByText('task.submit').first().waitFor({ timeout: 20_000 });
    expect(await page.getByText('webhook.deliver').count()).toBeGreaterThan(0);
    // The overview's cards come from the dashboard's own API, after the menu: one per queue, with its job count.
    await page
      .getByText(/^\d+ Jobs$/)
      .nth(2)
      .waitFor({ timeout: 20_000 });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'queues.png') });
    await context.close();
  });

  it('Prisma Studio (npm run studio) shows the tasks table with a task created here', async () => {
    const key = (await h.newTenant('studio')).api_key;
    const created = await request(h.url)
      .post('/v1/images/generations')
      .set(bearer(key))
      .send({ prompt: 'seen in studio', external_task_id: 'studio-row' });
    const taskId = created.body.data.task_id as string;
    const port = await freePort();
    const studio: ChildProcess = spawn('npm', ['run', '--silent', 'studio', '--', '--port', String(port), '--browser', 'none'], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: h.config.DATABASE_URL },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    studio.stdout!.on('data', (d) => (out += d));
    studio.stderr!.on('data', (d) => (out += d));
    try {
      const until = Date.now() + 60_000;
      while (!/running at/i.test(out)) {
        if (Date.now() > until || studio.exitCode !== null) throw new Error(`studio did not start:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      await page.goto(`http://localhost:${port}`);
      await page.getByText('tasks', { exact: true }).first().click({ timeout: 30_000 });
      await page.getByText(taskId).first().waitFor({ timeout: 30_000 });
      await page.screenshot({ path: path.join(SCREENSHOTS, 'studio-tasks.png') });
      await page.close();
    } finally {
      process.kill(-studio.pid!, 'SIGKILL');
    }
  });
});
