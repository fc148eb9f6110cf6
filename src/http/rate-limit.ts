import type { RequestHandler } from 'express';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError } from '../errors';

export interface RateLimitOptions {
  redis: Redis;
  keyPrefix: string;
  /** Requests per tenant per minute (RATE_LIMIT_PER_MINUTE), counted across every API process. */
  perMinute: number;
}

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
  return async (_req, res, next) => {
    try {
      const r = await limiter.consume(res.locals.tenant.id);
      res.set('x-ratelimit-limit', String(opts.perMinute));
      res.set('x-ratelimit-remaining', String(r.remainingPoints));
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
