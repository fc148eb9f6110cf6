import type { OverloadWindow } from './phase-overload';
import { compareRow, fmt, mean, met, ratio, sum } from './stats';

/** The overload phase's windows of each pipeline, in the order they ran. */
export interface OverloadResults {
  kind: string;
  backlog: number;
  service: OverloadWindow[];
  bare: OverloadWindow[];
}

const sides = ['service', 'bare'] as const;
const CAUSES = { timeouts: 'timeouts', connectionErrors: 'connection errors', non2xx: 'non-2xx answers' };
/** Counts read as counts: no decimals, and no ratio (0 against 0 is the point, not n/a). */
const countRow = (name: string, [sv, bv]: number[]) => [name, String(sv), String(bv), '', ''];
const TARGET = { ratio: 0.5, p99Ms: 1000 };

const failedCallbacks = (ws: OverloadWindow[]) =>
  sum(ws.map((w) => w.callbacks.timeouts + w.callbacks.connectionErrors + w.callbacks.non2xx));
const worst = (ws: OverloadWindow[], k: 'p50Ms' | 'p99Ms') => Math.max(...ws.map((w) => w.callbacks[k]));

/**
 * The targets under overload, on the service's figures: goodput over the drain (mean of the
 * windows) at least half the bare pipeline's, not one failed callback in any window, and the
 * worst window's callback p99 under a second.
 */
function verdict(o: OverloadResults) {
  const [goodput, bare] = sides.map((p) => mean(o[p].map((w) => w.goodput)));
  const [failed, p99] = [failedCallbacks(o.service), worst(o.service, 'p99Ms')];
  const ok = { goodput: goodput / bare >= TARGET.ratio, failed: failed === 0, p99: p99 < TARGET.p99Ms };
  return { goodput, bare, failed, p99, ok, all: ok.goodput && ok.failed && ok.p99 };
}

/** The phase's rows of the comparison table. */
export function overloadRows(o: OverloadResults): string[][] {
  const v = verdict(o);
  const per = (f: (ws: OverloadWindow[]) => number) => sides.map((p) => f(o[p]));
  const k = `${o.kind} overload`;
  return [
    compareRow(
      `${k}: goodput, tasks/s over the drain (backlog ${o.backlog}, mean of ${o.service.length} windows)`,
      [v.goodput, v.bare],
      '',
      `>= ${TARGET.ratio}x, 0 failed callbacks, callback p99 < ${TARGET.p99Ms} ms: ${met(v.all)}`,
    ),
    compareRow(
      `${k}: goodput, tasks/s in the steady window (mean)`,
      per((ws) => mean(ws.map((w) => w.steadyGoodput))),
    ),
    compareRow(
      `${k}: callback p50 at the upstream (worst window)`,
      per((ws) => worst(ws, 'p50Ms')),
      ' ms',
    ),
    compareRow(
      `${k}: callback p99 at the upstream (worst window)`,
      per((ws) => worst(ws, 'p99Ms')),
      ' ms',
    ),
    ...(['timeouts', 'connectionErrors', 'non2xx'] as const).map((cause) =>
      countRow(
        `${k}: failed callbacks, ${CAUSES[cause]} (all windows)`,
        per((ws) => sum(ws.map((w) => w.callbacks[cause]))),
      ),
    ),
    compareRow(
      `${k}: peak RSS, API process`,
      per((ws) => Math.max(...ws.map((w) => w.peakRssKb.api)) / 1024),
      ' MB',
    ),
    compareRow(
      `${k}: peak RSS, worker process`,
      per((ws) => Math.max(...ws.map((w) => w.peakRssKb.worker)) / 1024),
      ' MB',
    ),
  ];
}

/** Each window's goodput and drain, then the verdict spelled out target by target. */
export function overloadLines(o: OverloadResults): string[] {
  const v = verdict(o);
  const windows = o.service.map((s, i) => {
    const b = o.bare[i];
    const pair = (f: (w: OverloadWindow) => number) => `${fmt(f(s))} / ${fmt(f(b))} = ${ratio(f(s), f(b))}`;
    return `${i + 1}: ${pair((w) => w.goodput)} (steady ${pair((w) => w.steadyGoodput)}; drained in ${fmt(s.drainS)} / ${fmt(b.drainS)} s)`;
  });
  return [
    `${o.kind} overload windows, goodput tasks/s (service / bare; bare first in odd rounds): ${windows.join('; ')}`,
    `${o.kind} overload verdict: goodput ${ratio(v.goodput, v.bare)} (>= ${TARGET.ratio}x: ${met(v.ok.goodput)}), ` +
      `failed callbacks ${v.failed} (0: ${met(v.ok.failed)}), callback p99 ${fmt(v.p99)} ms (< ${TARGET.p99Ms} ms: ${met(v.ok.p99)}): ${met(v.all)}`,
  ];
}

/** What the ratio cannot show: every task ended, once upstream, and how the drain went. */
export function overloadIntegrityRows(o: OverloadResults): string[][] {
  const cells = (name: string, f: (ws: OverloadWindow[]) => string) => [`${o.kind} overload: ${name}`, ...sides.map((p) => f(o[p]))];
  const total = (ws: OverloadWindow[], f: (w: OverloadWindow) => number) => String(sum(ws.map(f)));
  const each = (ws: OverloadWindow[], f: (w: OverloadWindow) => string) => ws.map(f).join(', ');
  return [
    cells('tasks / succeeded / failed / unfinished after drain / upstream tasks (all windows)', (ws) =>
      (['tasks', 'succeeded', 'failed', 'unfinished', 'upstreamCreated'] as const).map((k) => total(ws, (w) => w[k])).join(' / '),
    ),
    cells('backlog creates refused or failed (all windows)', (ws) => total(ws, (w) => w.createErrors)),
    cells('backlog created in, s (each window)', (ws) => each(ws, (w) => fmt(w.createS))),
    cells('drained in, s (each window)', (ws) => each(ws, (w) => `${fmt(w.drainS)}${w.drained ? '' : ' NOT drained'}`)),
    cells('steady window, s after the worker was ready (each window)', (ws) =>
      each(ws, (w) => w.steadyWindowS.map((t) => fmt(t)).join('-')),
    ),
    cells('callbacks sent (all windows)', (ws) => total(ws, (w) => w.callbacks.sent)),
  ];
}
