import type { RequestHandler } from 'express';
import { AppError } from '../errors';
import { metrics } from '../observability/metrics';

export interface CallbackLoadOptions {
  /** CALLBACK_MAX_IN_FLIGHT: callbacks this process handles at once; past it, 503 at once. */
  maxInFlight: number;
  /** CALLBACK_TARGET_MS: a callback slower than this (or waiting longer, or delivered later) means congestion. */
  targetMs: number;
  /** Tells the deployment's workers, for `ms` (markCallbacksCongested). */
  signalCongested(ms: number): void;
}

/** How often congestion is judged at most; the mark lives a few judgements, so a steady state keeps it without gaps. */
const TICK_MS = 100;
const MARK_MS = 500;
/**
 * Slow callbacks mean congestion only when many are in flight: a few slow ones (a slow statement, a
 * flood of creates) are not what fewer submissions would cure.
 */
const MIN_CONGESTED_IN_FLIGHT = 8;
/** Late callbacks mean congestion only when at least this many were answered within one judgement. */
const MIN_LATE_CALLBACKS = 4;

/**
 * Load of this process's callback route. Backpressure is the first answer to congestion: while
 * callbacks take longer than their target, the workers are told to slow their submissions (fewer
 * tasks at the upstream, fewer callbacks to come). Shedding is the last: past `maxInFlight` a
 * callback is answered 503 with Retry-After at once, before its body is read, so the upstream never
 * waits until it gives up; the task is then covered by polling.
 *
 * Two measures of "longer than the target":
 * - in this process: a callback's time from its route to its answer, or the age of the oldest one
 *   in flight, with many in flight;
 * - as the upstream sees it: from the task's change (`updated_at` of the callback's body, the
 *   upstream's clock; the route records it in `res.locals.upstreamUpdatedAt`) to the answer. This
 *   one also counts the time a callback waited before this process read it (in the kernel's accept
 *   queue, or behind a busy event loop), which the first cannot see. It is judged as the excess
 *   over the lowest delay seen in the last minutes (the base: network and clock offset, as LEDBAT
 *   keeps it), and by the fastest callback of a judgement: when even that one was late, every
 *   callback is queueing; an old callback the upstream retries is late alone.
 */
export function callbackLoad(opts: CallbackLoadOptions): RequestHandler {
  // Start times by request, in arrival order: the first entry is the oldest still in flight.
  const inFlight = new Map<number, number>();
  const base = new BaseDelay();
  let next = 0;
  let slowest = 0;
  let most = 0;
  let shed = false;
  let fastestLate = Infinity;
  let lateSamples = 0;
  let judgedAt = 0;
  // Judged as callbacks come and go (no timer): without callbacks there is nothing to slow down.
  const judge = (now: number) => {
    if (now - judgedAt < TICK_MS) return;
    judgedAt = now;
    const oldest = inFlight.values().next().value;
    const worst = Math.max(slowest, oldest === undefined ? 0 : now - oldest);
    const late = lateSamples >= MIN_LATE_CALLBACKS && fastestLate > opts.targetMs;
    const congested = shed || late || (worst > opts.targetMs && most >= MIN_CONGESTED_IN_FLIGHT);
    slowest = 0;
    most = inFlight.size;
    shed = false;
    fastestLate = Infinity;
    lateSamples = 0;
    if (congested) opts.signalCongested(MARK_MS);
  };

  return (_req, res, next_) => {
    judge(Date.now());
    if (inFlight.size >= opts.maxInFlight) {
      metrics.callbacks.inc({ outcome: 'shed' });
      // Congested by definition: the next judgement (at most TICK_MS away) tells the workers.
      shed = true;
      return next_(new AppError('unavailable', 'too many callbacks in progress; retry later', { 'retry-after': '1' }));
    }
    const id = next++;
    const started = Date.now();
    inFlight.set(id, started);
    most = Math.max(most, inFlight.size);
    res.once('close', () => {
      const now = Date.now();
      inFlight.delete(id);
      slowest = Math.max(slowest, now - started);
      const changedAt = res.locals.upstreamUpdatedAt;
      if (typeof changedAt === 'number') {
        const excess = base.excess(now - changedAt, now);
        if (excess !== null) {
          fastestLate = Math.min(fastestLate, excess);
          lateSamples++;
        }
      }
      judge(now);
    });
    next_();
  };
}

/** The base delay is the lowest of one minimum per minute over this many minutes. */
const BASE_MINUTES = 10;
/** A delay further from the base than this is not a delivery delay but a clock or a field gone wrong. */
const IMPLAUSIBLE_DELAY_MS = 3_600_000;

/**
 * The lowest upstream delay of the last BASE_MINUTES minutes (one minimum per minute, so it follows
 * a clock that drifts or an upstream that moved), and each delay's excess over it.
 */
class BaseDelay {
  private minima: { minute: number; delay: number }[] = [];

  /** The delay's excess over the base, counting it in; null for a delay that cannot be one. */
  excess(delay: number, now: number): number | null {
    if (!Number.isFinite(delay) || Math.abs(delay) > IMPLAUSIBLE_DELAY_MS) return null;
    const minute = Math.floor(now / 60_000);
    const last = this.minima.at(-1);
    if (last?.minute === minute) last.delay = Math.min(last.delay, delay);
    else this.minima.push({ minute, delay });
    while (this.minima[0].minute <= minute - BASE_MINUTES) this.minima.shift();
    return delay - Math.min(...this.minima.map((m) => m.delay));
  }
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Locals {
      /** The upstream's `updated_at` (Unix ms, its clock) in the body of the callback being handled. */
      upstreamUpdatedAt?: number;
    }
  }
}
