import type { Response } from 'express';
import { AppError } from '../errors';

/**
 * Long polls and event streams that one tenant holds open at once in this API process
 * (MAX_WATCHERS_PER_TENANT). Each holds a connection and a waiter until it ends, so without a cap
 * one tenant could hold them all. The count is per process: a deployment with N API processes
 * admits up to N times the cap per tenant.
 */
export interface WatcherLimit {
  /**
   * Counts the request as one of the tenant's watchers until its response closes (answer sent,
   * client gone, error). `endsBy` is when the watch ends at the latest (its wait or stream limit),
   * from which a refusal's Retry-After is computed. Throws 429/1302 when the tenant is at the cap.
   */
  admit(tenantId: string, res: Response, endsBy: number): void;
}

export function createWatcherLimit(maxPerTenant: number): WatcherLimit {
  const byTenant = new Map<string, Set<{ endsBy: number }>>();
  return {
    admit(tenantId, res, endsBy) {
      const held = byTenant.get(tenantId) ?? new Set();
      if (held.size >= maxPerTenant) {
        // The earliest moment one of them is certain to have ended (a change may end it sooner).
        const firstEnd = Math.min(...[...held].map((w) => w.endsBy));
        const retryAfter = Math.max(1, Math.ceil((firstEnd - Date.now()) / 1000));
        throw new AppError(
          'rate_limited',
          `too many long polls and event streams open at once (limit ${maxPerTenant} per API process); retry in ${retryAfter} s or when one of them ends`,
          { 'retry-after': String(retryAfter) },
        );
      }
      // A client already gone never sees 'close' again: counting it would leak the place.
      if (res.closed) return;
      const watcher = { endsBy };
      byTenant.set(tenantId, held.add(watcher));
      res.once('close', () => {
        held.delete(watcher);
        if (held.size === 0 && byTenant.get(tenantId) === held) byTenant.delete(tenantId);
      });
    },
  };
}
