import { lookup } from 'node:dns/promises';
import http from 'node:http';
import request from 'supertest';
import { applyUpstreamUpdate } from '../../src/tasks/upstream-update';
import { checkPublicUrl, isPublicAddress } from '../../src/webhooks/ssrf';
import { bearer, insertQueuedTask } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { eventually } from '../helpers/invariants';
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

  /**
   * A callback URL stored as if it had passed the create-time check (the host was public then),
   * whose host points at a loopback address when the webhook is sent: only the connect-time check
   * of the delivery agent stands between the webhook and the receiver listening there.
   */
  it.each([
    ['a host name that now resolves to a loopback address', 'localhost'],
    ['an IP literal', undefined],
  ])('refuses them again at delivery time, for %s (DNS may have changed since)', async (_case, hostName) => {
    const address = hostName ? (await lookup(hostName)).address : '127.0.0.1';
    const target = await startReceiver({ host: address });
    try {
      const port = new URL(target.url).port;
      const url = hostName ? `http://${hostName}:${port}/hook` : target.url;
      // Without the check the webhook would arrive: the URL does reach this receiver.
      await plainPost(url);
      expect(target.received).toHaveLength(1);
      target.received.length = 0;

      const tenant = await h.newTenant(`b-${hostName ?? 'ip'}`);
      const id = await insertQueuedTask(h.api.db, tenant.id, url);
      await h.api.db.task.update({ where: { id }, data: { state: 'submitted', upstreamTaskId: 'up-1' } });
      await applyUpstreamUpdate(h.api.store, id, { task_id: 'up-1', task_status: 'processing' }, 'callback');
      const ended = async () => (await h.api.db.webhookDelivery.findFirstOrThrow({ where: { taskId: id } })).status;
      await eventually('the delivery ended', async () => (await ended()) !== 'pending', 15_000);
      // Every attempt of the schedule was made (inline, then the queue's retries), each one refused.
      expect(await ended()).toBe('dead');
      const attempts = await h.api.db.webhookAttempt.findMany({ where: { delivery: { taskId: id } }, orderBy: { attempt: 'asc' } });
      expect(attempts).toHaveLength(h.config.WEBHOOK_RETRY_SCHEDULE_MS.length);
      // The agent names the address it refused and, for a host name, the name it looked up.
      const refused = new RegExp(
        `DNS lookup ${address.replace(/[.:]/g, '\\$&')}\\(family:\\w+, host:${hostName ?? '[^)]*'}\\) is not allowed`,
      );
      for (const a of attempts)
        expect({ attempt: a.attempt, error: a.error, httpStatus: a.httpStatus }).toEqual({
          attempt: a.attempt,
          error: expect.stringMatching(refused),
          httpStatus: null,
        });
      expect(target.received).toHaveLength(0);
    } finally {
      await target.close();
    }
  });
});

/** One POST with Node's own agent (no address check). */
function plainPost(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent: false }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end('{}');
  });
}
