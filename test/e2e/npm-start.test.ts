import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { maintenanceUrl } from '../../src/db/migrate';
import { TEST_DB_BASE } from '../helpers/databases';
import { eventually } from '../helpers/invariants';

/**
 * The README's path, as a newcomer takes it: `npm start` with no upstream configured (so the
 * built-in simulator), on a database that does not exist yet; then `npm run cli -- keys ...` and
 * plain HTTP. Real processes, nothing in-process.
 */
const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..');
jest.setTimeout(120_000);

const databaseUrl = (() => {
  const u = new URL(TEST_DB_BASE);
  u.pathname = `${u.pathname}_start_w${process.env.JEST_WORKER_ID ?? '1'}`;
  return u.toString();
})();

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** The parent's environment minus anything that would configure a real upstream. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KLING_') && k !== 'PUBLIC_BASE_URL'));
  return { ...env, ...extra };
}

let server: ChildProcess;
let output = '';
let base = '';
let env: NodeJS.ProcessEnv;
const storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kt-start-results-'));

beforeAll(async () => {
  const admin = new Client({ connectionString: maintenanceUrl(databaseUrl) });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${new URL(databaseUrl).pathname.slice(1)}" WITH (FORCE)`);
  await admin.end();
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  env = cleanEnv({
    SIMULATOR_PROCESSING_MS: '50',
    SIMULATOR_FINISH_MS: '100',
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    QUEUE_PREFIX: `kt-start-${port}`,
    LOG_LEVEL: 'info',
    NODE_ENV: 'production',
    // The durable copies' default directory (data/results) is relative to the checkout: not in a test.
    STORAGE_DIR: storageDir,
  });
  server = spawn('npm', ['start'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  server.stdout!.on('data', (d) => (output += d));
  server.stderr!.on('data', (d) => (output += d));
  const until = Date.now() + 60_000;
  while (!/API listening/.test(output)) {
    if (Date.now() > until || server.exitCode !== null) throw new Error(`npm start did not come up:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
});

afterAll(async () => {
  if (server.exitCode === null) process.kill(-server.pid!, 'SIGKILL');
  fs.rmSync(storageDir, { recursive: true, force: true });
});

const cli = (...args: string[]) => run('npm', ['run', '--silent', 'cli', '--', ...args], { cwd: ROOT, env });

describe('npm start, then the CLI and the API', () => {
  it('creates its database, says loudly that it runs the simulator, and answers health checks', async () => {
    expect(output).toMatch(/BUILT-IN KLING SIMULATOR/);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    // Ready once the worker in the same process has stamped its first heartbeat, which can come
    // after the API listens: polled, as an orchestrator polls it.
    await eventually('npm start is ready', async () => (await fetch(`${base}/readyz`)).status === 200, 30_000);
  });

  it('serves the web console that npm ci built, with no extra step', async () => {
    const page = await fetch(`${base}/console`);
    expect(page.status).toBe(200);
    const html = await page.text();
    const script = /src="(\/console\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect((await fetch(`${base}${script}`)).status).toBe(200);
  });

  it('creates a key, takes a task to succeed, lists keys without secrets, and revokes', async () => {
    const { stdout } = await cli('keys', 'create', '--name', 'smoke');
    const key = JSON.parse(stdout);
    expect(Object.keys(key).sort()).toEqual(['access_key', 'api_key', 'id', 'name', 'secret_key', 'webhook_secret']);
    expect(key.webhook_secret).toMatch(/^whsec_/);
    const auth = { authorization: `Bearer ${key.api_key}`, 'content-type': 'application/json' };

    const created = await fetch(`${base}/v1/images/generations`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ prompt: 'a lighthouse', n: 2 }),
    }).then((r) => r.json() as Promise<{ data: { task_id: string } }>);
    expect(created).toMatchObject({ code: 0, data: { task_status: 'submitted' } });
    let task: { task_status: string; task_result: { images: { url: string }[] } } | undefined;
    for (let i = 0; i < 200 && task?.task_status !== 'succeed'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const res = (await fetch(`${base}/v1/images/generations/${created.data.task_id}`, { headers: auth }).then((r) => r.json())) as {
        data: typeof task;
      };
      task = res.data;
    }
    expect(task?.task_status).toBe('succeed');
    expect(task?.task_result.images).toHaveLength(2);
    // RESULT_URLS=mirror by default: the links are this service's durable copies, readable without a key.
    const copy = await fetch(task!.task_result.images[0].url);
    expect(task!.task_result.images[0].url.startsWith(`${base}/v1/files/`)).toBe(true);
    expect([copy.status, copy.headers.get('content-type')]).toEqual([200, 'image/png']);

    const listed = (await cli('keys', 'list')).stdout;
    expect(JSON.parse(listed)).toEqual([expect.objectContaining({ id: key.id, name: 'smoke', revoked_at: null })]);
    for (const secret of [key.api_key, key.secret_key, key.webhook_secret]) expect(listed).not.toContain(secret);

    expect(JSON.parse((await cli('keys', 'revoke', key.id)).stdout)).toEqual({ id: key.id, revoked: true });
    expect((await fetch(`${base}/v1/images/generations`, { headers: auth })).status).toBe(401);
    for (const secret of [key.api_key, key.secret_key, key.webhook_secret]) expect(output).not.toContain(secret);
    // The per-task callback token is a credential too: it must not reach the request log.
    const token = /\/callbacks\/kling\/[^/"]+\/([^"?]+)/.exec(output)?.[1];
    expect(token).toBe('[redacted]');
  });

  it('stops cleanly on SIGTERM', async () => {
    // 'close' waits for every process holding the output (npm, tsx and node) to be gone.
    const exited = new Promise<void>((r) => server.once('close', () => r()));
    // The whole group, as a terminal or a container runtime would (npm relays nothing reliably).
    process.kill(-server.pid!, 'SIGTERM');
    await exited;
    expect(output).toMatch(/"msg":"shutting down"/);
    expect(output).toMatch(/"msg":"stopped"/);
  });
});
