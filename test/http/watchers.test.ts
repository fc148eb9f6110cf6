import http from 'node:http';
import pg from 'pg';
import request from 'supertest';
import { cancelTask } from '../../src/tasks/end-task';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { eventually } from '../helpers/invariants';

jest.setTimeout(30_000);

const CAP = 3;

// No workers: tasks stay queued, so nothing changes them but the test, and the API process sends
// Postgres nothing of its own accord except the re-check of its waiters.
let h: Harness;
beforeAll(async () => {
  h = await startHarness({ workers: false, env: { MAX_WATCHERS_PER_TENANT: String(CAP), SSE_MAX_SECONDS: '1' } });
});
afterAll(async () => {
  // A failed test may leave a request open: close() would wait for it.
  h.api.server?.server.closeAllConnections();
  await h.close();
});

// A test that fails while requests are held must not leave them holding the server open.
const holding = new Set<AbortController>();
afterEach(() => {
  for (const ctl of holding) ctl.abort();
  holding.clear();
});

const path = (id: string, rest = '') => `/v1/images/generations/${encodeURIComponent(id)}${rest}`;

const create = async (key: string) =>
  (await request(h.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'x' })).body.data.task_id as string;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** A request held open until it answers or `abort` (the client going away) ends it. */
function hold(url: string, key: string): { done: Promise<Answer>; abort(): void } {
  const ctl = new AbortController();
  holding.add(ctl);
  const done = new Promise<Answer>((resolve, reject) => {
    http
      .get(`${h.url}${url}`, { headers: bearer(key), signal: ctl.signal }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
        res.on('error', () => resolve({ status: 0, headers: {}, text }));
      })
      .on('error', (err) => (ctl.signal.aborted ? resolve({ status: 0, headers: {}, text: '' }) : reject(err)));
  });
  return { done, abort: () => ctl.abort() };
}

const waiters = (n: number) => eventually(`${n} waiters in the API process`, async () => h.api.changes.waiting() === n, 10_000);

describe('MAX_WATCHERS_PER_TENANT', () => {
  it('refuses a long poll or event stream past the cap with 429/1302 and Retry-After, for that tenant only, until one ends', async () => {
    const a = (await h.newTenant('a')).api_key;
    const b = (await h.newTenant('b')).api_key;
    const ids = [await create(a), await create(a), await create(a), await create(a)];
    const finished = await create(a);
    await cancelTask(h.api.store, finished);
    const polls = ids.slice(0, CAP).map((id) => hold(path(id, '?wait=60'), a));
    await waiters(CAP);

    const expectRefused = (res: request.Response) => {
      expect([res.status, res.body.code]).toEqual([429, 1302]);
      expect(res.body.message).toMatch(new RegExp(`limit ${CAP} per API process`));
      // The held long polls end within 60 s at the latest.
      expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(60);
    };
    // Short waits: were one admitted, it would answer 200 soon, not hang the test.
    expectRefused(await request(h.url).get(path(ids[3], '?wait=2')).set(bearer(a)));
    expectRefused(await request(h.url).get(path(ids[3], '/events')).set(bearer(a)));

    // Not watchers: no wait, wait=0, and waits on a finished task (answered at once).
    for (const url of [path(ids[3]), path(ids[3], '?wait=0'), path(finished, '?wait=30')]) {
      expect((await request(h.url).get(url).set(bearer(a))).status).toBe(200);
    }
    const stream = await request(h.url).get(path(finished, '/events')).set(bearer(a));
    expect([stream.status, stream.text]).toEqual([200, expect.stringContaining('"task_status":"failed"')]);
    // Another tenant has its own count.
    const ofB = await create(b);
    expect((await request(h.url).get(path(ofB, '?wait=1')).set(bearer(b))).status).toBe(200);

    // The client of one long poll goes away: exactly one place is free again.
    polls[0].abort();
    await waiters(CAP - 1);
    const again = hold(path(ids[3], '?wait=60'), a);
    await waiters(CAP);
    expectRefused(await request(h.url).get(path(ids[0], '?wait=2')).set(bearer(a)));

    // Another long poll is answered (its task changed): its place is free too.
    await request(h.url).post(path(ids[1], '/cancel')).set(bearer(a)).expect(200);
    const answered = await polls[1].done;
    expect([answered.status, JSON.parse(answered.text).data.task_status]).toEqual([200, 'failed']);
    const third = hold(path(ids[0], '?wait=60'), a);
    await waiters(CAP);

    // Another one ends in an error (its task deleted meanwhile, seen by the re-check): its place is free too.
    await h.api.db.task.delete({ where: { id: ids[2] } });
    const failed = await polls[2].done;
    expect([failed.status, JSON.parse(failed.text).code]).toEqual([404, 1203]);
    const last = await request(h.url).get(path(ids[0], '?wait=1')).set(bearer(a));
    expect([last.status, last.body.data.task_status]).toEqual([200, 'submitted']);

    for (const p of [again, third]) p.abort();
    await waiters(0);
  });
});

describe('SSE_MAX_SECONDS', () => {
  it('ends a stream of an unfinished task by itself, after a retry: field for the reconnect', async () => {
    const key = (await h.newTenant()).api_key;
    const id = await create(key);
    const res = await hold(path(id, '/events'), key).done;
    expect(res.status).toBe(200);
    const blocks = res.text.split('\n\n').filter(Boolean);
    expect(blocks[0]).toMatch(/^retry: [1-9]\d*$/);
    expect(blocks[1]).toMatch(/^id: 1\nevent: task\ndata: \{.*"task_status":"submitted"/);
    expect((await h.api.db.task.findUniqueOrThrow({ where: { id } })).state).toBe('queued');
    await waiters(0);
  });
});

describe('the re-check of waited tasks', () => {
  it('wakes a long poll whose change was committed without any Redis message', async () => {
    const key = (await h.newTenant()).api_key;
    const id = await create(key);
    const poll = hold(path(id, '?wait=60'), key);
    await waiters(1);
    // A store without afterCommit: the change commits and nobody publishes it.
    await cancelTask({ db: h.api.db }, id);
    // wait=60 and a 30 s test timeout: only the re-read of Postgres can answer this in time.
    const res = await poll.done;
    expect([res.status, JSON.parse(res.text).data.task_status]).toEqual([200, 'failed']);
  });

  it('reads all waited tasks in one query a second, however many long polls wait', async () => {
    // Spread over tenants, each under the cap of this file.
    const keys = await Promise.all(Array.from({ length: 7 }, (_, i) => h.newTenant(`t${i}`).then((t) => t.api_key)));
    // Every query of the jest process, counted as it goes through (nothing is replaced).
    const spy = jest.spyOn(pg.Client.prototype, 'query');
    try {
      const measure = async (n: number) => {
        const ids = await Promise.all(Array.from({ length: n }, (_, i) => create(keys[i % keys.length])));
        const polls = ids.map((id, i) => hold(path(id, '?wait=60'), keys[i % keys.length]));
        await waiters(n);
        const before = spy.mock.calls.length;
        const started = Date.now();
        await new Promise((r) => setTimeout(r, 3000));
        const seconds = (Date.now() - started) / 1000;
        const count = spy.mock.calls.length - before;
        for (const p of polls) p.abort();
        await waiters(0);
        return { seconds, count };
      };
      for (const m of [await measure(2), await measure(20)]) {
        // At least one re-check ran; at most one a second, plus the first reads of the last arrivals.
        expect(m.count).toBeGreaterThanOrEqual(1);
        expect(m.count).toBeLessThanOrEqual(Math.ceil(m.seconds) + 2);
      }
    } finally {
      spy.mockRestore();
    }
  });
});

describe('stopping the API process', () => {
  it('answers its long polls at once and ends its event streams, instead of holding the shutdown for their limits', async () => {
    // Its own process (harness): a long poll of 60 s and a stream of 300 s would outlast this test's 30 s.
    const own = await startHarness({ workers: false });
    try {
      const key = (await own.newTenant()).api_key;
      const id = (await request(own.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'x' })).body.data.task_id;
      const get = (p: string) =>
        new Promise<Answer>((resolve, reject) => {
          http
            .get(`${own.url}${p}`, { headers: bearer(key) }, (res) => {
              let text = '';
              res.setEncoding('utf8');
              res.on('data', (c) => (text += c));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
            })
            .on('error', reject);
        });
      const poll = get(path(id, '?wait=60'));
      const stream = get(path(id, '/events'));
      await eventually('both waiting', async () => own.api.changes.waiting() === 2, 10_000);
      await own.api.close();
      const [polled, streamed] = await Promise.all([poll, stream]);
      expect([polled.status, JSON.parse(polled.text).data.task_status]).toEqual([200, 'submitted']);
      expect(streamed.status).toBe(200);
      expect(streamed.text).toMatch(/^retry: \d+\n\nid: 1\nevent: task\n/);
    } finally {
      // Closing again is harmless; it also clears the harness's queues from Redis.
      await own.close();
    }
  });
});
