import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import request from 'supertest';
import { createLogger } from '../../src/logger';
import { startService } from '../../src/service';
import { createTaskChanges } from '../../src/tasks/task-changes';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { eventually } from '../helpers/invariants';

jest.setTimeout(30_000);

let h: Harness;
let key: string;
/** The whole pipeline, for one describe block: harnesses share the database, so they must not overlap. */
function withPipeline() {
  beforeAll(async () => {
    h = await startHarness({ simulator: { processingAfterMs: 300, finishAfterMs: 300 } });
    key = (await h.newTenant()).api_key;
  });
  afterAll(async () => h.close());
}

const create = async () =>
  (await request(h.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'x' })).body.data.task_id as string;

/** Reads a whole SSE stream (it must end by itself) into its events. */
function readEvents(path: string, token: string): Promise<{ status: number; events: { event: string; data: Record<string, unknown> }[] }> {
  return new Promise((resolve, reject) => {
    http
      .get(`${h.url}${path}`, { headers: bearer(token) }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          const events = text
            .split('\n\n')
            .filter((block) => block.includes('data: '))
            .map((block) => ({
              event: /^event: (.*)$/m.exec(block)?.[1] ?? 'message',
              data: JSON.parse(/^data: (.*)$/m.exec(block)![1]) as Record<string, unknown>,
            }));
          resolve({ status: res.statusCode ?? 0, events });
        });
      })
      .on('error', reject);
  });
}

describe('waiting for a task without tight polling', () => {
  withPipeline();

  it('long poll: answers at once for a finished task, and refuses a bad wait', async () => {
    const id = await create();
    await h.waitForTask(id, (t) => t.state === 'succeed');
    const done = await request(h.url).get(`/v1/images/generations/${id}?wait=60`).set(bearer(key));
    expect(done.body.data.task_status).toBe('succeed');
    for (const bad of ['61', '-1', 'soon', '1.5']) {
      const res = await request(h.url).get(`/v1/images/generations/${id}?wait=${bad}`).set(bearer(key));
      expect([res.status, res.body.code]).toEqual([400, 1201]);
    }
  });

  it('SSE: one event per status change, in order, closing after the terminal one', async () => {
    const id = await create();
    const { status, events } = await readEvents(`/v1/images/generations/${id}/events`, key);
    expect(status).toBe(200);
    expect(events.map((e) => e.data.task_status)).toEqual(['submitted', 'processing', 'succeed']);
    expect(events.every((e) => e.event === 'task' && e.data.task_id === id)).toBe(true);
    expect((events[2].data.task_result as { images: unknown[] }).images).toHaveLength(1);
  });

  it('is tenant-scoped', async () => {
    const id = await create();
    const other = (await h.newTenant('other')).api_key;
    expect((await request(h.url).get(`/v1/images/generations/${id}?wait=1`).set(bearer(other))).status).toBe(404);
    expect((await readEvents(`/v1/images/generations/${id}/events`, other)).status).toBe(404);
  });
});

describe('waiters woken by Redis alone', () => {
  // No workers, so the task waits until the test starts one; and this API process never re-reads
  // Postgres for its waiters within a test: only a Redis message can wake them.
  let r: Harness;
  beforeAll(async () => {
    r = await startHarness({ workers: false, apiOptions: { changeRecheckMs: 3_600_000 } });
  });
  afterAll(async () => {
    // A failed test may leave its long poll open: close() would wait for it.
    r.api.server?.server.closeAllConnections();
    await r.close();
  });

  let rKey: string;
  const createIn = async () =>
    (await request(r.url).post('/v1/images/generations').set(bearer(rKey)).send({ prompt: 'x' })).body.data.task_id as string;
  /** Resolves once the API process has `n` waiters on a subscribed connection. */
  const subscribedWaiters = (n: number) => {
    const channel = `${r.config.QUEUE_PREFIX}:task-changes`;
    return eventually(
      `${n} waiters on a subscribed connection`,
      async () => r.api.changes.waiting() === n && ((await r.api.redis.pubsub('NUMSUB', channel)) as [string, number])[1] > 0,
      10_000,
    );
  };

  it('a long poll answers as soon as another process commits a change of its task', async () => {
    rKey = (await r.newTenant()).api_key;
    const id = await createIn();
    // wait=60 and a 30 s test timeout: only a wake-up on the change can answer this in time
    // (`then` sends the request now).
    const poll = request(r.url)
      .get(`/v1/images/generations/${id}?wait=60`)
      .set(bearer(rKey))
      .then((res) => res);
    // Waiting and subscribed before the change: its message is the only thing that can answer.
    await subscribedWaiters(1);
    // Another process (a worker, with its own connections) submits the task, queued until now.
    const worker = await startService({ ...r.config, ROLE: 'worker' }, createLogger('silent'), r.config.KLING_BASE_URL!);
    try {
      const res = await poll;
      expect(res.status).toBe(200);
      expect(res.body.data.tracker.state).not.toBe('queued');
      expect((await r.api.db.task.findUniqueOrThrow({ where: { id } })).eventSeq).toBeGreaterThan(1);
    } finally {
      await worker.close();
    }
  });

  it('an event stream whose task can no longer be read ends instead of hanging', async () => {
    const id = await createIn();
    const stream = new Promise<string>((resolve, reject) => {
      http
        .get(`${r.url}/v1/images/generations/${id}/events`, { headers: bearer(rKey) }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve(text));
        })
        .on('error', reject);
    });
    await subscribedWaiters(1);
    // Its next read after the message fails (404), well before SSE_MAX_SECONDS (300 s here).
    await r.api.db.task.delete({ where: { id } });
    r.api.changes.publish(id);
    const text = await stream;
    expect(text.match(/^event: task$/gm)).toHaveLength(1);
    expect(r.api.changes.waiting()).toBe(0);
  });
});

describe('change messages', () => {
  withPipeline();

  it('are published only while somebody watches', async () => {
    const prefix = `kt-test-watch-${randomUUID().slice(0, 8)}`;
    const redisUrl = h.config.REDIS_URL;
    const [publisherConn, watcherConn, listener] = [new Redis(redisUrl), new Redis(redisUrl), new Redis(redisUrl)];
    // Two processes' worth: one only publishes (a worker), one has the waiter (an API).
    const openSubscriber = () => new Redis(redisUrl);
    const publisher = createTaskChanges({ db: h.api.db, publisher: publisherConn, openSubscriber, prefix });
    const watcher = createTaskChanges({ db: h.api.db, publisher: watcherConn, openSubscriber, prefix });
    const heard: string[] = [];
    listener.on('message', (_channel, id: string) => heard.push(id));
    await listener.subscribe(`${prefix}:task-changes`);
    const settle = () => new Promise((r) => setTimeout(r, 300));
    try {
      publisher.publish('nobody-watches');
      await settle();
      expect(heard).toEqual([]);

      const id = await create();
      const task = await h.api.db.task.findUniqueOrThrow({ where: { id } });
      const stop = new AbortController();
      // Waits for a sequence far ahead, so it stays a watcher until aborted.
      const waiting = watcher.waitForChange(id, task.eventSeq + 100, 20_000, stop.signal);
      // The publisher read "nobody" less than a second ago; past that it reads the mark again.
      await new Promise((r) => setTimeout(r, 1100));
      publisher.publish('somebody-watches');
      await settle();
      expect(heard).toEqual(['somebody-watches']);

      stop.abort();
      await expect(waiting).resolves.toBe(false);
    } finally {
      await Promise.all([publisher.close(), watcher.close()]);
      for (const c of [publisherConn, watcherConn, listener]) c.disconnect();
    }
  });

  it('reach a listener of every change (a tenant-wide view) from another process, and make publishers publish while it listens', async () => {
    const prefix = `kt-test-all-${randomUUID().slice(0, 8)}`;
    const redisUrl = h.config.REDIS_URL;
    const [publisherConn, listenerConn] = [new Redis(redisUrl), new Redis(redisUrl)];
    const openSubscriber = () => new Redis(redisUrl);
    const publisher = createTaskChanges({ db: h.api.db, publisher: publisherConn, openSubscriber, prefix });
    const tenantView = createTaskChanges({ db: h.api.db, publisher: listenerConn, openSubscriber, prefix });
    const heard: string[] = [];
    try {
      const stopListening = tenantView.listenAll((id) => heard.push(id));
      expect(tenantView.waiting()).toBe(1);
      // The publisher may have read "nobody watches" before the listener's mark: past a second it reads again.
      await eventually(
        'the change heard',
        async () => {
          publisher.publish('task-a');
          return heard.includes('task-a');
        },
        10_000,
      );
      stopListening();
      expect(tenantView.waiting()).toBe(0);
      const before = heard.length;
      publisher.publish('task-b');
      await new Promise((r) => setTimeout(r, 300));
      expect(heard.length).toBe(before);
    } finally {
      await Promise.all([publisher.close(), tenantView.close()]);
      for (const c of [publisherConn, listenerConn]) c.disconnect();
    }
  });
});
