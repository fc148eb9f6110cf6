import type { Redis } from 'ioredis';
import { loadConfig } from '../../src/config';
import { createQueues } from '../../src/queues/queues';
import { createProducerConnection } from '../../src/queues/redis-connections';

/**
 * A service told to stop while its Redis connection is still being set up (Redis slow to answer,
 * or a shutdown right after start) drops the connection instead of closing it gracefully. The
 * queues sharing that connection must not leave a rejected promise behind: Node turns an unhandled
 * rejection into a crash, so the process would exit 1 instead of stopping cleanly. Jest fails the
 * running test on an unhandled rejection (a listener added here would not see it: Jest's sandbox
 * has its own `process`), so the test only has to stay alive until the rejections would come.
 */
const { REDIS_URL } = loadConfig({ DATABASE_URL: 'postgresql://unused' });

it('drops a connection that is still being set up without an unhandled rejection', async () => {
  const redis = createProducerConnection({ url: REDIS_URL, cluster: false }) as Redis;
  const errors: string[] = [];
  redis.on('error', (err) => errors.push(err.message));
  const queues = createQueues(redis, { prefix: 'kt-test-shutdown', submitAttempts: 1, submitBackoffMs: 1 });
  // The socket is created a few ticks after the client; waiting in ticks (never in the event
  // loop's I/O phase) means its connect event cannot have been handled yet.
  for (let ticks = 0; !redis.stream && ticks < 100; ticks++) await new Promise((resolve) => process.nextTick(resolve));
  expect([redis.status, Boolean(redis.stream)]).toEqual(['connecting', true]);
  const ended = new Promise((resolve) => redis.once('end', resolve));
  queues.disconnect();
  redis.disconnect();
  await ended;
  // The queues' own disconnects settle once their connection's set-up has failed, and Node reports a
  // rejection left unhandled when the event loop next turns.
  await Promise.allSettled([queues.submit, queues.deliver, queues.maintenance].map((q) => q.waitUntilReady()));
  await new Promise((resolve) => setImmediate(resolve));
  // The race this test needs happened: the handshake ran on the dropped socket and failed.
  expect(errors).toEqual([expect.stringMatching(/Stream isn't writeable/)]);
});
