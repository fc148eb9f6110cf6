import type { RequestHandler } from 'express';
import type { RedisClient } from '../lib/redis-client';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError } from '../errors';

export interface RateLimitOptions {
  redis: RedisClient;
  keyPrefix: string;
  /** Requests per tenant per minute (RATE_LIMIT_PER_MINUTE), counted across every API process. */
  perMinute: number;
}

/**
 * Points a process takes from the shared count at a time: 1 (exact) for limits under 2000 a
 * minute, up to 100 for large ones. A process serves its reserve locally, so a tenant sending
 * thousands of requests costs a Redis call per chunk instead of per request; what it reserves but
 * does not use in a window is counted all the same, and the last part-chunk of a window is not
 * served: the limit errs on the safe side, by at most a thousandth of it per process.
 */
export const chunkSize = (perMinute: number) => Math.max(1, Math.min(100, Math.floor(perMinute / 1000)));

/**
 * Per-tenant request rate, shared through Redis so that every API process counts together. While
 * Redis is down an in-process limiter stands in (per process, same limit), so the API still
 * answers and still limits.
 */
export function tenantRateLimit(opts: RateLimitOptions): RequestHandler {
  const limiter = new RateLimiterRedis({
    storeClient: opts.redis,
    keyPrefix: `${opts.keyPrefix}:rate`,
    points: opts.perMinute,
    duration: 60,
    insuranceLimiter: new RateLimiterMemory({ points: opts.perMinute, duration: 60 }),
  });
  const chunk = chunkSize(opts.perMinute);
  const reserves = new Map<string, { left: number; until: number; remaining: number }>();
  const refills = new Map<string, Promise<void>>();

  /** Takes a chunk from the shared count; throws RateLimiterRes when the window has less than a chunk left. */
  const refill = async (tenantId: string) => {
    const r = await limiter.consume(tenantId, chunk);
    if (reserves.size >= 10_000) reserves.clear();
    reserves.set(tenantId, { left: chunk, until: Date.now() + r.msBeforeNext, remaining: r.remainingPoints });
  };

  const take = async (tenantId: string): Promise<number> => {
    for (;;) {
      const reserve = reserves.get(tenantId);
      if (reserve && reserve.left > 0 && Date.now() < reserve.until) {
        reserve.left--;
        return reserve.remaining + reserve.left;
      }
      // One refill per tenant at a time: concurrent requests wait for it instead of each taking a chunk.
      let pending = refills.get(tenantId);
      if (!pending) {
        pending = refill(tenantId).finally(() => refills.delete(tenantId));
        refills.set(tenantId, pending);
      }
      await pending;
    }
  };

  return async (_req, res, next) => {
    try {
      const remaining = await take(res.locals.tenant.id);
      res.set('x-ratelimit-limit', String(opts.perMinute));
      res.set('x-ratelimit-remaining', String(remaining));
      next();
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) return next(err);
      const retryAfter = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
      next(
        new AppError('rate_limited', `rate limit of ${opts.perMinute} requests per minute exceeded; retry in ${retryAfter} s`, {
          'retry-after': String(retryAfter),
        }),
      );
    }
  };
}
