import http from 'node:http';
import request from 'supertest';
import { PNG } from 'pngjs';
import { knownNotToResolve } from '../../src/lib/host-lookup';
import { metrics } from '../../src/observability/metrics';
import { servingFrom, startHarness, type Harness } from '../helpers/harness';
import { startReceiver, type Receiver } from '../helpers/receiver';
import { bearer } from '../helpers/fixtures';
import { eventually } from '../helpers/invariants';
import { freePort } from '../helpers/processes';
import { counted } from '../helpers/metrics';

const IMAGES = '/v1/images/generations';
let h: Harness;
let receiver: Receiver;

beforeAll(async () => {
  receiver = await startReceiver();
  // Ten minutes: only a failure known to be for good can end the wait within this test.
  // STORAGE_QUICK_MS=0: each first copy is made from `storing` (a quick copy that fails is in
  // test/results/inline-copies.test.ts), so the first task's way is the same on any machine.
  h = await startHarness({ env: { RESULT_URLS: 'mirror', STORAGE_TIMEOUT_MS: '600000', STORAGE_RETRY_MS: '200', STORAGE_QUICK_MS: '0' } });
});
afterAll(async () => {
  await h.close();
  await receiver.close();
});

describe('durable copies that cannot be made', () => {
  it("succeeds at once with the upstream's URLs when the upstream's file is gone (404), without waiting for STORAGE_TIMEOUT_MS", async () => {
    // The upstream's results point at files it does not have.
    await servingFrom(h, { url: `${h.sim.fileBaseUrl}/gone` }, async () => {
      const t = await h.newTenant('carol');
      const fellBackBefore = await counted(metrics.resultStorageFallbacks);
      const id = (await request(h.url).post(IMAGES).set(bearer(t.api_key)).send({ prompt: 'fog', callback_url: receiver.url }).expect(200))
        .body.data.task_id;
      const done = await h.waitForTask(id, (x) => x.state === 'succeed');
      expect(done.filesState).toBe('upstream');
      const shown = (await request(h.url).get(`${IMAGES}/${id}`).set(bearer(t.api_key)).expect(200)).body.data;
      expect(shown.task_status).toBe('succeed');
      expect(shown.task_result.images[0].url).toContain('/gone/');
      expect(shown.task_result.images[0].url).toBe(shown.tracker.files.upstream_urls[0]);
      expect(await counted(metrics.resultStorageFallbacks)).toBe(fellBackBefore + 1);
      const deliveries = await h.api.db.webhookDelivery.findMany({ where: { taskId: id }, orderBy: { seq: 'asc' } });
      expect(deliveries.map((d) => d.eventType)).toEqual(['task.processing', 'task.succeeded']);
    });
  });

  it("succeeds at once with the upstream's URLs when the files' host refuses connections, then swaps in durable links once it answers", async () => {
    // The upstream's file server is down (nothing listens on its port); it comes back later.
    const port = await freePort();
    await servingFrom(h, { url: `http://127.0.0.1:${port}` }, async () => {
      const t = await h.newTenant('dave');
      const id = (await request(h.url).post(IMAGES).set(bearer(t.api_key)).send({ prompt: 'rain', callback_url: receiver.url }).expect(200))
        .body.data.task_id;
      const done = await h.waitForTask(id, (x) => x.state === 'succeed');
      expect(done.filesState).toBe('upstream');
      const png = PNG.sync.write(new PNG({ width: 8, height: 8 }));
      const files = http.createServer((_req, res) => void res.writeHead(200, { 'content-type': 'image/png' }).end(png));
      await new Promise<void>((r) => files.listen(port, '127.0.0.1', r));
      try {
        await eventually(
          'the copy made once the host answers',
          async () => (await h.api.db.task.findUniqueOrThrow({ where: { id } })).filesState === 'stored',
        );
        const shown = (await request(h.url).get(`${IMAGES}/${id}`).set(bearer(t.api_key)).expect(200)).body.data;
        const served = await request(shown.task_result.images[0].url).get('').buffer(true);
        expect(Buffer.compare(served.body as Buffer, png)).toBe(0);
      } finally {
        files.closeAllConnections();
        await new Promise((r) => files.close(r));
      }
      const deliveries = await h.api.db.webhookDelivery.findMany({ where: { taskId: id }, orderBy: { seq: 'asc' } });
      expect(deliveries.map((d) => d.eventType)).toEqual(['task.processing', 'task.succeeded']);
    });
  });

  it('does not wait for copies from a host name this service was just told does not exist: the next task succeeds without `storing`', async () => {
    // .invalid names never resolve (RFC 2606).
    await servingFrom(h, { url: 'http://files.kling-tracker-test.invalid' }, async () => {
      const t = await h.newTenant('erin');
      const create = async () =>
        (await request(h.url).post(IMAGES).set(bearer(t.api_key)).send({ prompt: 'dunes', callback_url: receiver.url }).expect(200)).body
          .data.task_id as string;
      const states = async (id: string) =>
        (await h.api.db.taskEvent.findMany({ where: { taskId: id }, orderBy: { seq: 'asc' } })).map((e) => e.toState);
      // The first copy is tried, and fails for good: the name is unknown.
      const first = await create();
      expect((await h.waitForTask(first, (x) => x.state === 'succeed')).filesState).toBe('upstream');
      expect(await states(first)).toContain('storing');
      await eventually('the name known not to resolve', async () => knownNotToResolve(`${h.sim.fileBaseUrl}/x.png`));
      const fellBackBefore = await counted(metrics.resultStorageFallbacks);
      const second = await create();
      expect((await h.waitForTask(second, (x) => x.state === 'succeed')).filesState).toBe('upstream');
      expect(await states(second)).not.toContain('storing');
      expect(await counted(metrics.resultStorageFallbacks)).toBe(fellBackBefore + 1);
      const shown = (await request(h.url).get(`${IMAGES}/${second}`).set(bearer(t.api_key)).expect(200)).body.data;
      expect(shown.task_result.images[0].url).toMatch(/^http:\/\/files\.kling-tracker-test\.invalid\//);
      expect(shown.tracker.files.state).toBe('upstream');
      const deliveries = await h.api.db.webhookDelivery.findMany({ where: { taskId: second }, orderBy: { seq: 'asc' } });
      expect(deliveries.map((d) => d.eventType)).toEqual(['task.processing', 'task.succeeded']);
    });
  });
});
