import { execFile } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startHarness, type Harness } from '../helpers/harness';

/**
 * Drop-in: a public Kling SDK that this project did not write (`kling-api`), given a tenant's
 * AK/SK and this service's base URL, creates a task and polls it to completion. The SDK insists
 * on HTTPS, so the test serves the same app over TLS with a throwaway certificate.
 */
const run = promisify(execFile);
jest.setTimeout(60_000);

let h: Harness;
let tls: https.Server;
let dir: string;

beforeAll(async () => {
  // The SDK validates model names against its own list, which predates kling-v3.
  h = await startHarness({ simulator: { models: ['kling-v3', 'kling-v2-1'] }, env: { KLING_MODELS: 'kling-v3,kling-v2-1' } });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kt-tls-'));
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    path.join(dir, 'key.pem'),
    '-out',
    path.join(dir, 'cert.pem'),
  ]);
  const app = h.api.server!.server.listeners('request')[0] as Parameters<typeof https.createServer>[1];
  tls = https.createServer({ key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) }, app);
  await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
});
afterAll(async () => {
  await new Promise((r) => tls.close(r));
  await h.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('a public Kling SDK pointed at this service', () => {
  it("creates a task with the tenant's AK/SK and polls it to succeed", async () => {
    const tenant = await h.newTenant('sdk-user');
    const { stdout } = await run(process.execPath, [path.join(__dirname, 'fixtures', 'kling-sdk-client.mjs')], {
      cwd: path.join(__dirname, '..', '..'),
      env: {
        ...process.env,
        AK: tenant.access_key,
        SK: tenant.secret_key,
        BASE_URL: `https://127.0.0.1:${(tls.address() as AddressInfo).port}`,
        NODE_EXTRA_CA_CERTS: path.join(dir, 'cert.pem'),
      },
    });
    const { created, result } = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(created).toMatchObject({ code: 0, data: { task_status: 'submitted' } });
    const task = await h.api.db.task.findUniqueOrThrow({ where: { id: created.data.task_id } });
    expect(task.tenantId).toBe(tenant.id);
    expect(task.state).toBe('succeed');
    expect(JSON.stringify(result)).toContain('succeed');
    expect(JSON.stringify(result)).toContain(created.data.task_id);
    expect(h.sim.createdCount()).toBe(1);
  });
});
