import express from 'express';
import pino from 'pino';
import request from 'supertest';
import { createDb, type Db } from '../../src/db/client';
import { errorHandler } from '../../src/errors';

/**
 * The one error middleware on its own (no guard in front of it), with errors thrown by the real
 * router, body parser and database: client errors are 4xx Kling bodies, never a 500.
 */
let db: Db;
beforeAll(() => {
  db = createDb(process.env.DATABASE_URL!, 2);
});
afterAll(async () => db.$disconnect());

function appWith(mount: (app: express.Express) => void) {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const app = express();
  app.use((_req, res, next) => {
    res.locals.requestId = 'req-under-test';
    next();
  });
  mount(app);
  app.use(errorHandler(log));
  return { app, lines };
}

const body = (res: request.Response) => ({ status: res.status, ...res.body });

describe('the error middleware', () => {
  it('answers a path parameter the router cannot percent-decode with 400/1200, not 500', async () => {
    const { app, lines } = appWith((a) => a.get('/things/:id', (_req, res) => res.json({ ok: true })));
    for (const escape of ['%zz', '%', '%FF', '%ED%A0%80']) {
      expect(body(await request(app).get(`/things/a${escape}`))).toEqual({
        status: 400,
        code: 1200,
        message: 'malformed request: a path parameter is not valid percent-encoded UTF-8',
        request_id: 'req-under-test',
      });
    }
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  });

  it('answers a JSON body that does not decompress with 400/1200', async () => {
    const { app } = appWith((a) => a.post('/json', express.json(), (_req, res) => res.json({ ok: true })));
    const res = await request(app).post('/json').set('content-type', 'application/json').set('content-encoding', 'gzip').send('not gzip');
    expect(body(res)).toMatchObject({ status: 400, code: 1200, message: expect.stringMatching(/^malformed request/) });
  });

  it('keeps the status of the client errors it has a code for, and answers other 4xx as 400/1200', async () => {
    const cases: [status: number, answer: [number, number]][] = [
      [404, [404, 1202]],
      [408, [408, 1200]],
      [413, [413, 1200]],
      [415, [415, 1200]],
      [431, [431, 1200]],
      [416, [400, 1200]],
    ];
    for (const [status, [http, code]] of cases) {
      const { app } = appWith((a) =>
        a.get('/', () => {
          throw Object.assign(new Error('told to the client'), { statusCode: status, expose: true });
        }),
      );
      expect(body(await request(app).get('/'))).toEqual({
        status: http,
        code,
        message: 'malformed request: told to the client',
        request_id: 'req-under-test',
      });
    }
  });

  it('answers a NUL that reached Postgres (through Prisma or pg) with 400/1200, and warns that an edge check is missing', async () => {
    const { app, lines } = appWith((a) => {
      a.get('/prisma', async () => void (await db.task.findFirst({ where: { id: 'a\0b' } })));
      a.get('/pg', async () => void (await db.sql('SELECT 1 FROM tasks WHERE id = $1', ['a\0b'])));
    });
    for (const path of ['/prisma', '/pg']) {
      expect(body(await request(app).get(path))).toMatchObject({ status: 400, code: 1200, message: expect.stringMatching(/NUL/) });
    }
    expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
      'a request value with NUL reached Postgres',
      'a request value with NUL reached Postgres',
    ]);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  });

  it('still answers server errors, with or without a status, as 500/5000 without internals, and logs them', async () => {
    for (const thrown of [new Error('secret internals'), Object.assign(new Error('secret internals'), { status: 502 })]) {
      const { app, lines } = appWith((a) =>
        a.get('/', () => {
          throw thrown;
        }),
      );
      expect(body(await request(app).get('/'))).toEqual({
        status: 500,
        code: 5000,
        message: 'internal error',
        request_id: 'req-under-test',
      });
      expect(lines.filter((l) => l.level === 50).map((l) => l.msg)).toEqual(['unhandled error']);
    }
  });
});
