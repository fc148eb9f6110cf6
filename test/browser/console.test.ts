import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { bearer, pngBase64 } from '../helpers/fixtures';
import { launchChromium, SCREENSHOTS } from '../helpers/browser';
import { startHarness, type Harness } from '../helpers/harness';
import { eventually } from '../helpers/invariants';
import { startReceiver, type Receiver } from '../helpers/receiver';

/**
 * The web console (/console) as people use it, in a real headless Chromium (Debian's, driven by
 * playwright-core), against the real service, workers and simulator. The simulator takes a few
 * seconds per task here, so that a task is seen unfinished, then finishing. Screenshots of each
 * view land in test-results/screenshots, or in SCREENSHOTS_DIR (`npm run docs:screenshots`).
 */
jest.setTimeout(120_000);

const ADMIN = 'console-browser-admin-token';
const WIDE = { width: 1440, height: 960 };
const UI_TIMEOUT = 20_000;

let h: Harness;
let browser: Browser;
let receiver: Receiver;
let alice: { api_key: string };
let storageDir: string;
/** Problems the page reported (CSP violations, script errors): none is expected. */
const pageProblems: string[] = [];

beforeAll(async () => {
  // RESULT_URLS=mirror, the product's default: pictures are this service's durable copies.
  storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kt-console-files-'));
  h = await startHarness({
    env: { ADMIN_TOKEN: ADMIN, RESULT_URLS: 'mirror', STORAGE_DIR: storageDir },
    simulator: { processingAfterMs: 1500, finishAfterMs: 2000 },
  });
  receiver = await startReceiver();
  alice = await h.newTenant('alice');
  browser = await launchChromium();
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
  await receiver?.close();
  await h?.close();
  fs.rmSync(storageDir, { recursive: true, force: true });
});
afterEach(() => {
  expect(pageProblems).toEqual([]);
});

async function openConsole(viewport = WIDE): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) pageProblems.push(m.text());
  });
  page.on('pageerror', (e) => pageProblems.push(e.message));
  await page.goto(`${h.url}/console`);
  return { context, page };
}

async function signIn(key: string, viewport = WIDE) {
  const opened = await openConsole(viewport);
  await opened.page.getByLabel('API key').fill(key);
  await opened.page.getByRole('button', { name: 'Sign in' }).click();
  await opened.page.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: UI_TIMEOUT });
  return opened;
}

async function createImage(key: string, prompt: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await request(h.url)
    .post('/v1/images/generations')
    .set(bearer(key))
    .send({ prompt, ...extra });
  expect(res.status).toBe(200);
  return res.body.data.task_id as string;
}

const card = (page: Page, taskId: string) => page.locator(`[data-task-id="${taskId}"]`);

describe('the web console in a real browser', () => {
  it('refuses a wrong key with a message, and keeps the key out of storage when signing in', async () => {
    const { context, page } = await openConsole();
    await page.getByLabel('API key').fill('kt_wrong-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('API key not recognised').waitFor({ timeout: UI_TIMEOUT });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'console-sign-in.png') });
    await page.getByLabel('API key').fill(alice.api_key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: UI_TIMEOUT });
    // Browser code, as a string: the project's type check knows Node's globals, not the DOM's.
    const stored = await page.evaluate<string>(
      'JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie',
    );
    expect(stored).not.toContain(alice.api_key);
    // The session cookie exists, but page scripts cannot read it (HttpOnly).
    expect((await context.cookies()).map((c) => [c.name, c.httpOnly, c.sameSite])).toEqual([['kt_console', true, 'Strict']]);
    await context.close();
  });

  it('shows a new task appear and finish with its picture, without a reload (live), then its detail on click', async () => {
    const { context, page } = await signIn(alice.api_key);
    await page.getByText('No tasks yet').waitFor({ timeout: UI_TIMEOUT });
    await page.evaluate('window.marker = 42');
    const taskId = await createImage(alice.api_key, 'a lighthouse at dawn', { callback_url: receiver.url });
    // Seen unfinished first, then finished: the page follows it live.
    await card(page, taskId)
      .getByText(/^(submitted|processing)$/)
      .waitFor({ timeout: UI_TIMEOUT });
    await card(page, taskId).getByText('succeed', { exact: true }).waitFor({ timeout: UI_TIMEOUT });
    await card(page, taskId).locator('img').waitFor({ timeout: UI_TIMEOUT });
    expect(await card(page, taskId).getByText('a lighthouse at dawn').count()).toBe(1);
    // Never reloaded.
    expect(await page.evaluate('window.marker')).toBe(42);

    await card(page, taskId).click();
    await page.getByRole('heading', { name: /Image generation/ }).waitFor({ timeout: UI_TIMEOUT });
    const full = page.locator('.results img');
    await full.first().waitFor({ timeout: UI_TIMEOUT });
    expect(await full.first().evaluate((img: any) => img.naturalWidth)).toBeGreaterThan(0);
    expect(await page.getByRole('link', { name: 'Download image 1' }).count()).toBe(1);
    await page.getByText('a lighthouse at dawn').waitFor();
    // The timeline: queued -> submitted -> processing -> succeed.
    await page.locator('.timeline li').nth(3).waitFor({ timeout: UI_TIMEOUT });
    expect(await page.locator('.timeline li').last().textContent()).toContain('succeed');
    // The picture is this service's copy, and the detail says where it lives and where it came from.
    expect(await full.first().getAttribute('src')).toMatch(/\/v1\/files\//);
    const copy = await h.api.db.resultFile.findFirstOrThrow({ where: { taskId } });
    const row = page.getByTestId('stored-file');
    await row.first().waitFor({ timeout: UI_TIMEOUT });
    const shown = await row.first().textContent();
    for (const part of ['image 1', 'image/png', 'directory', copy.storageKey, copy.upstreamUrl]) expect(shown).toContain(part);
    expect(await page.getByTestId('files-state').textContent()).toMatch(/^Kept here/);
    await context.close();
  });

  it('resends a webhook with Redeliver, and the receiver gets it', async () => {
    const taskId = await createImage(alice.api_key, 'redeliver me', { callback_url: receiver.url });
    await h.waitForTask(taskId, (t) => t.state === 'succeed');
    const deliveries = () => h.api.db.webhookDelivery.findMany({ where: { taskId } });
    for (const until = Date.now() + 15_000; Date.now() < until; await new Promise((r) => setTimeout(r, 100))) {
      const rows = await deliveries();
      if (rows.length === 2 && rows.every((d) => d.status === 'delivered')) break;
    }
    const before = receiver.received.filter((r) => r.json.task_id === taskId).length;
    expect(before).toBe(2);

    const { context, page } = await signIn(alice.api_key);
    await page.goto(`${h.url}/console#/tasks/${taskId}`);
    const redeliver = page.getByRole('button', { name: 'Redeliver' });
    await redeliver.first().waitFor({ timeout: UI_TIMEOUT });
    expect(await redeliver.count()).toBe(2);
    await redeliver.last().click();
    await page.getByText('Redelivery queued.').waitFor({ timeout: UI_TIMEOUT });
    for (const until = Date.now() + 15_000; Date.now() < until; await new Promise((r) => setTimeout(r, 50))) {
      if (receiver.received.filter((r) => r.json.task_id === taskId).length > before) break;
    }
    const got = receiver.received.filter((r) => r.json.task_id === taskId);
    expect(got).toHaveLength(3);
    expect(got[2].json.task_status).toBe('succeed');
    expect(got[2].headers['webhook-id']).toBe(got[1].headers['webhook-id']);
    // The new attempt shows up in the detail (a second chain).
    await page.getByText('redelivery 1, #1').waitFor({ timeout: UI_TIMEOUT });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'console-detail.png'), fullPage: true });
    await context.close();
  });

  it('filters by status and kind, and finds a task by external_task_id', async () => {
    const video = await request(h.url)
      .post('/v1/videos/text2video')
      .set(bearer(alice.api_key))
      .send({ prompt: 'waves on a beach', external_task_id: 'my-wave' });
    expect(video.status).toBe(200);
    const videoId = video.body.data.task_id as string;
    const { context, page } = await signIn(alice.api_key);
    await card(page, videoId).waitFor({ timeout: UI_TIMEOUT });
    const images = await h.api.db.task.findMany({ where: { kind: 'image-generation' }, select: { id: true } });
    expect(images.length).toBeGreaterThan(0);

    await page.getByLabel('Kind').selectOption('text-to-video');
    await card(page, images[0].id).waitFor({ state: 'detached', timeout: UI_TIMEOUT });
    expect(await page.locator('[data-task-id]').count()).toBe(1);
    await h.waitForTask(videoId, (t) => t.state === 'succeed', 30_000);
    await card(page, videoId).locator('video').waitFor({ timeout: UI_TIMEOUT });

    await page.getByLabel('Kind').selectOption('');
    await page.getByLabel('Status').selectOption('failed');
    await page.getByText('No task matches these filters').waitFor({ timeout: UI_TIMEOUT });
    await page.getByLabel('Status').selectOption('succeed');
    await card(page, images[0].id).waitFor({ timeout: UI_TIMEOUT });

    await page.getByRole('button', { name: 'Clear filters' }).click();
    await card(page, images[0].id).waitFor({ timeout: UI_TIMEOUT });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'console-gallery.png') });
    await page.getByLabel('Search by task_id or external_task_id').fill('my-wave');
    await page.getByLabel('Search by task_id or external_task_id').press('Enter');
    await page.locator('[data-task-id]').nth(1).waitFor({ state: 'detached', timeout: UI_TIMEOUT });
    expect(await page.locator('[data-task-id]').getAttribute('data-task-id')).toBe(videoId);

    await card(page, videoId).click();
    const player = page.locator('.results video');
    await player.waitFor({ timeout: UI_TIMEOUT });
    // Its first frame has loaded.
    await page.waitForFunction("document.querySelector('.results video')?.readyState >= 2", undefined, { timeout: UI_TIMEOUT });
    await context.close();
  });

  it("shows the API's validation message next to the field, then creates the task and follows it until canceled", async () => {
    const { context, page } = await signIn(alice.api_key);
    await page.getByRole('link', { name: 'New task' }).click();
    await page.getByRole('textbox', { name: 'prompt (required)', exact: true }).fill('   ');
    await page.getByLabel('n', { exact: true }).fill('12');
    await page.getByRole('button', { name: 'Create image generation task' }).click();
    const api = await request(h.url).post('/v1/images/generations').set(bearer(alice.api_key)).send({ prompt: '   ', n: 12 });
    expect(api.status).toBe(400);
    const fieldError = page.locator(`#in-${api.body.message.split(':')[0]}-error`);
    await fieldError.waitFor({ timeout: UI_TIMEOUT });
    expect(await fieldError.textContent()).toBe(api.body.message);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'console-create-error.png'), fullPage: true });
    const count = await h.api.db.task.count();

    await page.getByRole('textbox', { name: 'prompt (required)', exact: true }).fill('a red kite over hills');
    await page.getByLabel('n', { exact: true }).fill('2');
    await page.getByRole('button', { name: 'Create image generation task' }).click();
    await page.getByRole('heading', { name: /Image generation/ }).waitFor({ timeout: UI_TIMEOUT });
    expect(await h.api.db.task.count()).toBe(count + 1);
    const created = await h.api.db.task.findFirstOrThrow({ orderBy: { createdAt: 'desc' } });
    expect(created.request).toMatchObject({ prompt: 'a red kite over hills', n: 2 });
    expect(page.url()).toContain(created.id);

    await page.getByRole('button', { name: 'Cancel task' }).click();
    await page.getByTestId('detail-status').getByText('failed').waitFor({ timeout: 30_000 });
    await page.getByText('canceled by the client').first().waitFor({ timeout: UI_TIMEOUT });
    expect((await h.api.db.task.findUniqueOrThrow({ where: { id: created.id } })).failureReason).toBe('canceled');
    await context.close();
  });

  it('creates an image-to-video task from an uploaded image, sent as bare base64', async () => {
    const { context, page } = await signIn(alice.api_key);
    await page.goto(`${h.url}/console#/new/image-to-video`);
    const png = pngBase64(400, 400);
    await page
      .getByLabel('Upload image', { exact: true })
      .setInputFiles({ name: 'first.png', mimeType: 'image/png', buffer: Buffer.from(png, 'base64') });
    await page.getByText('first.png').waitFor({ timeout: UI_TIMEOUT });
    await page.getByRole('textbox', { name: 'prompt', exact: true }).fill('the picture comes alive');
    await page.getByRole('button', { name: 'Create image to video task' }).click();
    await page.getByRole('heading', { name: /Image to video/ }).waitFor({ timeout: UI_TIMEOUT });
    const created = await h.api.db.task.findFirstOrThrow({ where: { kind: 'image-to-video' } });
    expect((created.request as { image: string }).image).toBe(png);
    expect(page.url()).toContain(created.id);
    await context.close();
  });

  it('shows another tenant nothing of the first, not even by its task id', async () => {
    const bob = await h.newTenant('bob');
    const aliceTask = await h.api.db.task.findFirstOrThrow({ select: { id: true } });
    const { context, page } = await signIn(bob.api_key);
    await page.getByText('No tasks yet').waitFor({ timeout: UI_TIMEOUT });
    expect(await page.locator('[data-task-id]').count()).toBe(0);
    await page.goto(`${h.url}/console#/tasks/${aliceTask.id}`);
    await page.getByRole('alert').getByText(`task not found: ${aliceTask.id}`).waitFor({ timeout: UI_TIMEOUT });
    // A task of Alice's made now does not reach Bob's live page.
    await page.goto(`${h.url}/console#/`);
    const later = await createImage(alice.api_key, 'not for bob');
    await h.waitForTask(later, (t) => t.state === 'succeed', 30_000);
    await page.getByText('No tasks yet').waitFor({ timeout: UI_TIMEOUT });
    expect(await page.locator('[data-task-id]').count()).toBe(0);
    await context.close();
  });

  it('is usable at phone width, by keyboard', async () => {
    const { context, page } = await signIn(alice.api_key, { width: 390, height: 844 });
    await page.locator('[data-task-id]').first().waitFor({ timeout: UI_TIMEOUT });
    // Nothing wider than the screen.
    expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'console-phone.png') });
    // Tab to the first task and open it with Enter.
    const first = await page.locator('[data-task-id]').first().getAttribute('data-task-id');
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press('Tab');
      if ((await page.evaluate<string | null>("document.activeElement?.getAttribute('data-task-id')")) === first) break;
    }
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: new RegExp(first!) }).waitFor({ timeout: UI_TIMEOUT });
    await context.close();
  });

  it('shows the operator the upstream accounts with their health, the queues and the tenants, and resends dead webhooks in bulk', async () => {
    // A receiver that always fails: the task's two webhooks die after the (short) retry schedule.
    const failing = await startReceiver();
    failing.reply = () => ({ status: 500, body: 'down for maintenance' });
    let context: BrowserContext | undefined;
    // However the test ends: a receiver left open would keep jest from exiting.
    try {
      const doomed = await createImage(alice.api_key, 'nobody hears me', { callback_url: failing.url });
      await eventually(
        'two dead deliveries',
        async () => (await h.api.db.webhookDelivery.count({ where: { taskId: doomed, status: 'dead' } })) === 2,
        30_000,
      );
      const attemptsBefore = failing.received.length;
      const opened = await signIn(ADMIN);
      context = opened.context;
      const page = opened.page;
      await page.getByRole('heading', { name: 'Upstream accounts' }).waitFor({ timeout: UI_TIMEOUT });
      const account = page.locator('[data-account-id="env"]');
      await account.waitFor({ timeout: UI_TIMEOUT });
      expect(await account.locator('.health').textContent()).toBe('ok');
      expect(await page.getByRole('cell', { name: 'task.submit' }).count()).toBe(1);
      expect(await page.getByRole('link', { name: 'Open the queue dashboard' }).getAttribute('href')).toBe('/admin/queues');
      await page.getByRole('cell', { name: 'alice' }).waitFor({ timeout: UI_TIMEOUT });
      // Out of rotation and back, as `accounts disable` / `enable` do.
      await page.getByRole('button', { name: 'Disable env' }).click();
      await page.getByText('Account disabled.').waitFor({ timeout: UI_TIMEOUT });
      await page.getByRole('button', { name: 'Enable env' }).waitFor({ timeout: UI_TIMEOUT });
      expect(await account.locator('.health').textContent()).toBe('disabled');
      expect((await h.api.db.upstreamAccount.findUniqueOrThrow({ where: { id: 'env' } })).enabled).toBe(false);
      await page.getByRole('button', { name: 'Enable env' }).click();
      await page.getByText('Account enabled.').waitFor({ timeout: UI_TIMEOUT });
      await page.getByRole('button', { name: 'Disable env' }).waitFor({ timeout: UI_TIMEOUT });
      expect(await account.locator('.health').textContent()).toBe('ok');
      await page.getByRole('cell', { name: 'HTTP 500' }).first().waitFor({ timeout: UI_TIMEOUT });
      await page.screenshot({ path: path.join(SCREENSHOTS, 'console-operator.png'), fullPage: true });
      await page.getByRole('button', { name: 'Select all' }).click();
      await page.getByRole('button', { name: 'Redeliver selected (2)' }).click();
      await page.getByText('2 of 2 deliveries queued again.').waitFor({ timeout: UI_TIMEOUT });
      await eventually('both sent again', async () => failing.received.length >= attemptsBefore + 2, 15_000);
      const chains = await h.api.db.webhookDelivery.findMany({ where: { taskId: doomed }, select: { chain: true } });
      expect(chains.map((d) => d.chain)).toEqual([2, 2]);
    } finally {
      await context?.close();
      await failing.close();
    }
  });
});
