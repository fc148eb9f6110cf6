import request from 'supertest';
import { applyUpstreamUpdate } from '../../src/tasks/task-transitions';
import { checkPublicUrl, isPublicAddress } from '../../src/webhooks/ssrf';
import { bearer, insertQueuedTask } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { startReceiver, type Receiver } from '../helpers/receiver';

describe('address checks', () => {
  it.each([
    '127.0.0.1',
    '10.1.2.3',
    '172.16.0.1',
    '192.168.1.1',
    '169.254.169.254',
    '100.100.100.200',
    '0.0.0.0',
    '::1',
    'fe80::1',
    'fd00:ec2::254',
    '::ffff:10.0.0.1',
    '224.0.0.1',
    '255.255.255.255',
  ])('refuses %s', (a) => expect(isPublicAddress(a)).toBe(false));
  it.each(['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111'])('accepts %s', (a) => expect(isPublicAddress(a)).toBe(true));

  it.each([
    'http://localhost:8080/hook',
    'http://127.0.0.1/hook',
    'http://[::1]/hook',
    'http://169.254.169.254/latest/meta-data',
    'http://[::ffff:192.168.0.1]/x',
    'http://2130706433/',
  ])('refuses the webhook URL %s', async (url) => {
    expect(await checkPublicUrl(url)).toMatch(/private, loopback, link-local or reserved/);
  });

  it('refuses a host that does not resolve, and accepts a public address', async () => {
    expect(await checkPublicUrl('https://no-such-host.invalid/hook')).toMatch(/does not resolve/);
    expect(await checkPublicUrl('https://8.8.8.8/hook')).toBeNull();
  });
});

describe('webhook URLs on private networks (WEBHOOK_ALLOW_PRIVATE_NETWORKS=false)', () => {
  let h: Harness;
  let rx: Receiver;
  beforeAll(async () => {
    h = await startHarness({ env: { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'false' } });
    rx = await startReceiver();
  });
  afterAll(async () => {
    await rx.close();
    await h.close();
  });

  it('refuses them at create time with 400/1201 naming callback_url, storing and sending nothing', async () => {
    const key = (await h.newTenant()).api_key;
    for (const url of [rx.url, 'http://10.0.0.7/hook', 'http://169.254.169.254/latest']) {
      const res = await request(h.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'x', callback_url: url });
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ code: 1201, message: expect.stringMatching(/^callback_url: /) });
    }
    expect(await h.api.db.task.count()).toBe(0);
    expect(h.sim.received).toHaveLength(0);
  });

  it('refuses them again at delivery time (DNS may have changed since)', async () => {
    const tenant = await h.newTenant('b');
    // As if the host was public at create time and points at 127.0.0.1 now.
    const id = await insertQueuedTask(h.api.db, tenant.id, rx.url);
    await h.api.db.task.update({ where: { id }, data: { state: 'submitted', upstreamTaskId: 'up-1' } });
    await applyUpstreamUpdate(h.api.store, id, { task_id: 'up-1', task_status: 'processing' }, 'callback');
    const until = Date.now() + 10_000;
    let attempts: { error: string | null }[] = [];
    while (attempts.length < 2 && Date.now() < until) {
      attempts = await h.api.db.webhookAttempt.findMany({ where: { delivery: { taskId: id } } });
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    expect(attempts[0].error).toMatch(/not allowed|private/i);
    expect(rx.received).toHaveLength(0);
  });
});
