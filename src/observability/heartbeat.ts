import os from 'node:os';
import type { RedisClient } from '../lib/redis-client';

/**
 * Worker liveness for /readyz: every worker process stamps a sorted set in Redis; a stamp younger
 * than STALE_MS means "some worker is alive".
 */
const BEAT_MS = 5_000;
const STALE_MS = 15_000;

const keyOf = (prefix: string) => `${prefix}:workers:heartbeat`;

export function startHeartbeat(redis: RedisClient, prefix: string): { stop(): Promise<void> } {
  const member = `${os.hostname()}:${process.pid}`;
  const beat = () => void redis.zadd(keyOf(prefix), Date.now(), member).catch(() => undefined);
  beat();
  // The first beat may come before the connection is up (commands are not queued offline).
  redis.on('ready', beat);
  const timer = setInterval(beat, BEAT_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      redis.off('ready', beat);
      await redis.zrem(keyOf(prefix), member).catch(() => undefined);
    },
  };
}

export async function workersAlive(redis: RedisClient, prefix: string): Promise<number> {
  const since = Date.now() - STALE_MS;
  await redis.zremrangebyscore(keyOf(prefix), 0, since - 60_000);
  return redis.zcount(keyOf(prefix), since, '+inf');
}
