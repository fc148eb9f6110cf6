import type { Response } from 'express';

interface HeldRequest {
  res: Response;
  resolve: (proceed: boolean) => void;
  timer?: NodeJS.Timeout;
  /** Whether the fault that holds it is still on (hung requests only). */
  held?: () => boolean;
}

/**
 * Holds API requests unanswered (the `hang` fault) or delays them (`createLatencyMs`).
 * A held request that is released is then processed normally, even if its client has given up
 * meanwhile: exactly the "request arrived, answer lost" case a client must survive.
 */
export class RequestGate {
  private readonly held = new Set<HeldRequest>();
  private closed = false;

  /**
   * Resolves true when the request may proceed (`held` has turned false and releaseHung was
   * called), false when the simulator closed meanwhile.
   */
  hold(res: Response, held: () => boolean): Promise<boolean> {
    return new Promise((resolve) => this.add({ res, resolve, held }));
  }

  delay(res: Response, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const entry: HeldRequest = { res, resolve };
      entry.timer = setTimeout(() => this.finish(entry, true), ms);
      this.add(entry);
    });
  }

  /** Lets every hung (not merely delayed) request whose fault is off proceed. */
  releaseHung(): void {
    for (const entry of [...this.held]) if (entry.held && !entry.held()) this.finish(entry, true);
  }

  /** Ends every held request by destroying its socket, so no client (or jest) waits forever. */
  close(): void {
    this.closed = true;
    for (const entry of [...this.held]) {
      this.finish(entry, false);
      entry.res.socket?.destroy();
    }
  }

  private add(entry: HeldRequest): void {
    if (this.closed) {
      clearTimeout(entry.timer);
      entry.resolve(false);
      entry.res.socket?.destroy();
      return;
    }
    this.held.add(entry);
  }

  private finish(entry: HeldRequest, proceed: boolean): void {
    if (!this.held.delete(entry)) return;
    clearTimeout(entry.timer);
    entry.resolve(proceed);
  }
}
