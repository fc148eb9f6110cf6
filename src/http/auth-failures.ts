import type { RedisClient } from '../lib/redis-client';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

/**
 * Failed authentications per client address (AUTH_FAILURES_PER_MINUTE), counted in Redis across
 * API processes (in memory while Redis is down). Once an address is over the limit, this process
 * knows it without asking anyone: its next unauthenticated requests are refused before any lookup,
 * so guessing keys costs the service almost nothing. A credential the process already knows to be
 * valid is still served (the caller checks that first): one abusive client behind a shared
 * address does not lock out the others.
 */
export interface AuthFailures {
  /** Milliseconds until this address may try again; 0 when it is not blocked. No I/O. */
  blockedFor(address: string): number;
  /** Counts one failed authentication of the address. */
  record(address: string): Promise<void>;
}

const MAX_BLOCKED = 100_000;

export function authFailureLimit(opts: { redis: RedisClient; keyPrefix: string; perMinute: number }): AuthFailures {
  const limiter = new RateLimiterRedis({
    storeClient: opts.redis,
    keyPrefix: `${opts.keyPrefix}:auth-failures`,
    points: opts.perMinute,
    duration: 60,
    insuranceLimiter: new RateLimiterMemory({ points: opts.perMinute, duration: 60 }),
  });
  const blockedUntil = new Map<string, number>();
  const block = (address: string, ms: number) => {
    if (blockedUntil.size >= MAX_BLOCKED) {
      const now = Date.now();
      for (const [a, until] of blockedUntil) if (until <= now) blockedUntil.delete(a);
      if (blockedUntil.size >= MAX_BLOCKED) blockedUntil.clear();
    }
    blockedUntil.set(address, Date.now() + Math.max(ms, 1000));
  };
  return {
    blockedFor(address) {
      const until = blockedUntil.get(address);
      if (until === undefined) return 0;
      const left = until - Date.now();
      if (left > 0) return left;
      blockedUntil.delete(address);
      return 0;
    },
    async record(address) {
      try {
        const res = await limiter.consume(address);
        // The last failure allowed this minute: the next attempt is refused without a lookup.
        if (res.remainingPoints <= 0) block(address, res.msBeforeNext);
      } catch (err) {
        if (err instanceof RateLimiterRes) block(address, err.msBeforeNext);
      }
    },
  };
}
