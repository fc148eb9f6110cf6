import type { RequestHandler } from 'express';
import { AppError } from '../errors';
import { metrics } from '../observability/metrics';

export interface CallbackLoadOptions {
  /** CALLBACK_MAX_IN_FLIGHT: callbacks this process handles at once; past it, 503 at once. */
  maxInFlight: number;
  /** CALLBACK_TARGET_MS: a callback slower than this (or waiting longer) means congestion. */
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

/**
 * Load of this process's callback route. Backpressure is the first answer to congestion: while a
 * callback takes longer than its target, the workers are told to slow their submissions (fewer
 * tasks at the upstream, fewer callbacks to come). Shedding is the last: past `maxInFlight` a
 * callback is answered 503 with Retry-After at once, before its body is read, so the upstream never
 * waits until it gives up; the task is then covered by polling.
 */
export function callbackLoad(opts: CallbackLoadOptions): RequestHandler {
  // Start times by request, in arrival order: the first entry is the oldest still in flight.
  const inFlight = new Map<number, number>();
  let next = 0;
  let slowest = 0;
  let most = 0;
  let shed = false;
  let judgedAt = 0;
  // Judged as callbacks come and go (no timer): without callbacks there is nothing to slow down.
  const judge = (now: number) => {
    if (now - judgedAt < TICK_MS) return;
    judgedAt = now;
    const oldest = inFlight.values().next().value;
    const worst = Math.max(slowest, oldest === undefined ? 0 : now - oldest);
    const congested = shed || (worst > opts.targetMs && most >= MIN_CONGESTED_IN_FLIGHT);
    slowest = 0;
    most = inFlight.size;
    shed = false;
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
      judge(now);
    });
    next_();
  };
}
