export interface SubmissionWindowDeps {
  /** Upstream slots held now in the deployment, all pools (slotsInUse). */
  inFlight(): Promise<number>;
  /** Whether an API process says its callbacks are congested (callbacksCongested); rejects when that cannot be read. */
  congested(): Promise<boolean>;
  /** The window never grows past this (every account's limits together: beyond them the claim refuses anyway); read at each resize. */
  max: number | (() => number);
  /** Reports each change of the window (a gauge). */
  onChange?(window: number): void;
}

/** Slots the window never shrinks below, and where it starts. */
export const MIN_WINDOW = 4;
const INITIAL_WINDOW = 64;
/** A read of the counts serves every admission for this long. */
const READ_EVERY_MS = 50;
/** After a cut, the next waits this long: the tasks already at the upstream call back meanwhile. */
const CUT_EVERY_MS = 500;
const CUT = 0.7;
/** Growth by 10% at most this often: slow enough for the congestion a growth causes to show before the next. */
const GROW_EVERY_MS = 200;
const GROWTH = 1.1;

/**
 * Backpressure on submissions (AIMD, as TCP's congestion window): the slots held at the upstream,
 * whose callbacks are still to come, may not exceed a window that grows while the deployment's
 * callbacks are absorbed within their target and the window is what limits, and is cut to 70% of
 * what is in flight when an API process says they are not. So the upstream's tasks finish no faster
 * than their callbacks can be taken, however large the upstream's capacity: a backlog is submitted
 * at the rate the API keeps up with instead of flooding it with callbacks it then drops.
 *
 * Soft by design (the account's slot limit is the hard one, in the claim): this process counts its
 * own admissions until a read that began after their claim counts them, other processes' only at
 * the next read, so several workers can overshoot by what they admit within one read. A count that
 * cannot be read admits: submissions never stop on a signal they cannot get. A congestion mark that
 * cannot be read leaves the window as it is, neither grown nor cut.
 */
export class SubmissionWindow {
  private window: number;
  private held = 0;
  /** Admissions here, and of those, the ones whose claim was done before the last read began (so `held` counts them). */
  private admitted = 0;
  private claimed = 0;
  private reflected = 0;
  private readAt = 0;
  private cutAt = 0;
  private grownAt = 0;
  private reading?: Promise<void>;
  private readonly waiters: Array<() => void> = [];
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly deps: SubmissionWindowDeps) {
    this.window = Math.min(INITIAL_WINDOW, Math.max(this.max(), MIN_WINDOW));
    deps.onChange?.(this.window);
  }

  /**
   * Resolves when a submission may start (at once while the window has room), with the function to
   * call once its slot claim is done, whatever its outcome: from then on the counts read include it.
   */
  async admit(): Promise<() => void> {
    if (!this.closed) {
      if (Date.now() - this.readAt >= READ_EVERY_MS) await this.read();
      if (this.waiters.length || this.room() <= 0) {
        await new Promise<void>((resolve) => {
          this.waiters.push(resolve);
          this.schedule();
        });
      }
    }
    this.admitted++;
    let done = false;
    return () => {
      if (!done) this.claimed++;
      done = true;
    };
  }

  /** The current window, in slots. */
  size(): number {
    return this.window;
  }

  /** Lets every waiting submission go (shutdown: they finish their jobs rather than hold the worker's close). */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const go of this.waiters.splice(0)) go();
  }

  private room(): number {
    return this.window - this.held - (this.admitted - this.reflected);
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.read().then(() => {
        // Each admitted waiter counts itself once it runs: count its place now, before the next one.
        let room = this.room();
        while (this.waiters.length && room-- > 0) this.waiters.shift()!();
        if (this.waiters.length) this.schedule();
      });
    }, READ_EVERY_MS);
  }

  private read(): Promise<void> {
    this.reading ??= this.readCounts().finally(() => (this.reading = undefined));
    return this.reading;
  }

  private async readCounts(): Promise<void> {
    const claimedBefore = this.claimed;
    const [held, congested] = await Promise.allSettled([this.deps.inFlight(), this.deps.congested()]);
    this.readAt = Date.now();
    this.reflected = claimedBefore;
    // No count: admit what is waiting rather than stall (the claim still enforces the account's limit).
    this.held = held.status === 'fulfilled' ? held.value : 0;
    // Without either signal the window stays as it is: a mark that cannot be read says nothing of the callbacks.
    if (held.status === 'rejected' || congested.status === 'rejected') return;
    // The window is what limits: submissions wait for it, or it is (nearly) full.
    const binding = this.waiters.length > 0 || this.window - this.room() >= this.window * 0.9;
    if (congested.value) this.cut();
    else if (binding && this.readAt - this.grownAt >= GROW_EVERY_MS) {
      this.grownAt = this.readAt;
      this.resize(Math.ceil(this.window * GROWTH));
    }
  }

  private cut(): void {
    const now = Date.now();
    if (now - this.cutAt < CUT_EVERY_MS) return;
    this.cutAt = now;
    this.resize(Math.floor(Math.min(this.window, this.held) * CUT));
  }

  private max(): number {
    return typeof this.deps.max === 'function' ? this.deps.max() : this.deps.max;
  }

  private resize(to: number): void {
    const next = Math.max(MIN_WINDOW, Math.min(to, Math.max(this.max(), MIN_WINDOW)));
    if (next === this.window) return;
    this.window = next;
    this.deps.onChange?.(next);
  }
}
