import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startClientLoad } from '../../scripts/soak/client-load';
import { seededRandom } from '../../scripts/soak/random';

/**
 * The soak's client keeps its rate in wall time. On a loaded machine its process can be starved of
 * CPU for a while; the creates due meanwhile are started when it runs again, so a run makes the
 * load it announces (a full `npm test` once saw 60 tasks of the 108 that 36 s at 3/s promise).
 */
it('starts every create due in the wall time elapsed, even after its process was held up', async () => {
  let received = 0;
  const server = http.createServer((req, res) => {
    received++;
    req.resume();
    req.on('end', () =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: { task_id: `t${received}` } })),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const load = startClientLoad({
      baseUrl,
      apiKey: 'k',
      callbackUrl: `${baseUrl}/hook`,
      ratePerSec: 20,
      random: seededRandom(1),
      runId: 'r',
    });
    const started = Date.now();
    // The process is held up for 600 ms: no timer runs meanwhile (twelve creates come due).
    while (Date.now() - started < 600);
    await new Promise((r) => setTimeout(r, 400));
    await load.stop(5000);
    // At least a second at 20/s: 20 creates due, give or take the last tick.
    expect(load.accepted.size).toBeGreaterThanOrEqual(19);
    expect(received).toBe(load.accepted.size);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
