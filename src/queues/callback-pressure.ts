import type { RedisClient } from '../lib/redis-client';

/**
 * "The API cannot absorb callbacks fast enough", from API processes to the submitting workers of
 * the deployment. An API process whose callbacks take longer than their target sets the mark for a
 * moment, and renews it while that lasts; workers read it and slow their submissions. One key,
 * written only while congested: a healthy deployment pays nothing.
 */
const key = (prefix: string) => `${prefix}:callbacks-congested`;

/** Marks the deployment's callbacks as congested for `ms`. Best effort: Redis down means no signal, not an error. */
export async function markCallbacksCongested(redis: RedisClient, prefix: string, ms: number): Promise<void> {
  await redis.set(key(prefix), '1', 'PX', ms).catch(() => undefined);
}

/**
 * Whether some API process marked its callbacks congested within the mark's lifetime. Rejects when
 * Redis cannot be read: "no mark" would read as "the callbacks keep up", and grow the window.
 */
export async function callbacksCongested(redis: RedisClient, prefix: string): Promise<boolean> {
  return (await redis.exists(key(prefix))) === 1;
}
