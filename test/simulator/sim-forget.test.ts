import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { createKlingSimulator } from '../../src/simulator/kling-simulator';

const AUTH = { authorization: 'Bearer test-key' };

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(check()).toBe(true);
}

/**
 * A simulator serving a long run (the benchmark's memory mode) forgets what has ended, so that its
 * memory and its lookups (every create looks its external_task_id up) stay bounded.
 */
describe('a simulator forgetting ended tasks', () => {
  it('forgets the tasks that ended before the given time, with the requests and callbacks before it, and keeps the rest', async () => {
    const receiver = http.createServer((req, res) => req.resume().on('end', () => res.writeHead(204).end()));
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const callbackUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    // Tasks start at once and would take a minute to finish: the test ends them.
    const sim = createKlingSimulator({ apiKey: 'test-key', processingAfterMs: 0, finishAfterMs: 60_000 });
    try {
      const create = async (external: string) =>
        (
          await request(sim.app)
            .post('/v1/images/generations')
            .set(AUTH)
            .send({ prompt: 'p', callback_url: callbackUrl, external_task_id: external })
        ).body.data.task_id as string;
      const [succeeded, failed, running] = [await create('old-1'), await create('old-2'), await create('old-3')];
      await until(() => sim.callbacks.length === 3);
      sim.setTaskStatus(succeeded, 'succeed');
      sim.setTaskStatus(failed, 'failed');
      await until(() => sim.callbacks.length === 5);
      const cut = Date.now() + 1;
      await new Promise((r) => setTimeout(r, 5));
      const late = await create('late');
      await until(() => sim.callbacks.length === 6);

      expect(sim.forgetEnded(cut)).toBe(2);
      expect([...sim.tasks.keys()]).toEqual([running, late]);
      expect(sim.callbacks.map((c) => [c.task_id, c.status])).toEqual([[late, 'processing']]);
      expect(sim.received.map((r) => r.body)).toMatchObject([{ external_task_id: 'late' }]);
      for (const id of [succeeded, failed]) expect((await request(sim.app).get(`/v1/images/generations/${id}`).set(AUTH)).status).toBe(404);
      expect((await request(sim.app).get(`/v1/images/generations/${running}`).set(AUTH)).body.data.task_status).toBe('processing');
      expect(sim.forgetEnded(Date.now() + 1)).toBe(0);
    } finally {
      await sim.close();
      await new Promise((r) => receiver.close(r));
    }
  });
});
