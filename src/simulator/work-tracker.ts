/**
 * Tracks the simulator's own pending work (transition timers, callback deliveries) so settle()
 * can wait for quiescence and close() can stop everything.
 *
 * Timers are unref'd so an idle simulator never keeps the process alive, but while someone awaits
 * settle() they are ref'd again: otherwise a script awaiting settle() could exit mid-wait.
 */
export class WorkTracker {
  private readonly timers = new Set<NodeJS.Timeout>();
  private inFlight = 0;
  private waiters: Array<() => void> = [];
  private closed = false;

  schedule(delayMs: number, run: () => void): NodeJS.Timeout | undefined {
    if (this.closed) return undefined;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      try {
        run();
      } finally {
        this.resolveIfIdle();
      }
    }, delayMs);
    if (this.waiters.length === 0) timer.unref();
    this.timers.add(timer);
    return timer;
  }

  cancel(timer: NodeJS.Timeout | undefined): void {
    if (!timer || !this.timers.delete(timer)) return;
    clearTimeout(timer);
    this.resolveIfIdle();
  }

  /** Counts a promise as pending work until it settles. */
  track(work: Promise<unknown>): void {
    this.inFlight++;
    const done = () => {
      this.inFlight--;
      this.resolveIfIdle();
    };
    work.then(done, done);
  }

  settle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    for (const timer of this.timers) timer.ref();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.waiters.splice(0).forEach((resolve) => resolve());
  }

  private isIdle(): boolean {
    return this.closed || (this.timers.size === 0 && this.inFlight === 0);
  }

  private resolveIfIdle(): void {
    if (this.isIdle()) this.waiters.splice(0).forEach((resolve) => resolve());
  }
}
