import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type pino from 'pino';
import request from 'supertest';
import { requestLog } from '../../src/http/request-log';
import { eventually } from '../helpers/invariants';
import { capturingLogger } from '../helpers/log-capture';

/** The request log on its own, in front of real routes, with a real pino logger whose lines the test reads. */
function appAt(level: pino.Level) {
  const { logger: log, lines: written } = capturingLogger(level);
  const lines = () => written.map((line) => JSON.parse(line) as Record<string, unknown>);
  let held: express.Response | undefined;
  const app = express();
  app.use((_req, res, next) => {
    res.locals.requestId = 'req-under-test';
    next();
  });
  app.use(requestLog(log));
  app.get('/ok', (_req, res) => void res.json({ ok: true }));
  app.post('/callbacks/kling/:taskId/:token', (_req, res) => void res.json({ ok: true }));
  app.get('/broken', (_req, res) => void res.status(503).json({ ok: false }));
  // Answers only when the test says so: a client can leave first.
  app.get('/held', (_req, res) => void (held = res));
  return { app, lines, held: () => held };
}

/** The first line with message `msg`, once there is one (the log is written when the response closes). */
async function lineWith(lines: () => Record<string, unknown>[], msg: string): Promise<Record<string, unknown>> {
  await eventually(`a "${msg}" line`, async () => lines().some((l) => l.msg === msg), 2_000);
  return lines().find((l) => l.msg === msg)!;
}

describe('the request log', () => {
  it('writes one info line per answered request, with its request id, method, URL and status', async () => {
    const { app, lines } = appAt('info');
    await request(app).get('/ok?x=1').expect(200);
    const line = await lineWith(lines, 'request completed');
    expect(line).toMatchObject({ level: 30, request_id: 'req-under-test', req: { method: 'GET', url: '/ok?x=1' }, res: { status: 200 } });
    expect(typeof line.responseTime).toBe('number');
    expect(lines()).toHaveLength(1);
  });

  it('never writes a callback token', async () => {
    const { app, lines } = appAt('info');
    await request(app).post('/callbacks/kling/task-1/a-secret-callback-token').send({}).expect(200);
    const line = await lineWith(lines, 'request completed');
    expect(line.req).toEqual({ method: 'POST', url: '/callbacks/kling/task-1/[redacted]' });
    expect(JSON.stringify(lines())).not.toContain('a-secret-callback-token');
  });

  it('writes a failed request (5xx) as an error, at info and below it', async () => {
    for (const level of ['info', 'warn'] as const) {
      const { app, lines } = appAt(level);
      await request(app).get('/broken').expect(503);
      expect(await lineWith(lines, 'request failed')).toMatchObject({ level: 50, req: { url: '/broken' }, res: { status: 503 } });
      expect(lines()).toHaveLength(1);
    }
  });

  it('writes nothing for an answered request below info', async () => {
    const { app, lines } = appAt('warn');
    await request(app).get('/ok').expect(200);
    // The failed request after it is logged: had the first one been, it would come first.
    await request(app).get('/broken').expect(503);
    await lineWith(lines, 'request failed');
    expect(lines().map((l) => l.msg)).toEqual(['request failed']);
  });

  it('writes a request whose client left before the answer as aborted, without a status', async () => {
    const { app, lines, held } = appAt('info');
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const { port } = server.address() as AddressInfo;
      const req = http.get({ host: '127.0.0.1', port, path: '/held' });
      req.on('error', () => undefined);
      await eventually('the request reached its route', async () => held() !== undefined, 2_000);
      expect(held()).toBeDefined();
      req.destroy();
      const line = await lineWith(lines, 'request aborted');
      expect(line).toMatchObject({ level: 30, req: { method: 'GET', url: '/held' } });
      expect(line.res).toBeUndefined();
      expect(lines().filter((l) => l.msg === 'request completed')).toEqual([]);
    } finally {
      server.close();
    }
  });
});
