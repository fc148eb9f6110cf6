import type { SoakReport } from './soak';

/** How many ids a failed check lists (the rest are counted). */
const SHOWN = 20;

/** The soak's verdict for a person: what ran, each check with its count, and the ids behind every violation. */
export function formatReport(r: SoakReport): string {
  const s = r.stats;
  const lines = [
    `soak: seed ${r.seed}, ${(r.loadMs / 60_000).toFixed(1)} min of load at ${r.ratePerSec} tasks/s, settled ${(r.drainedInMs / 1000).toFixed(1)} s after it`,
    `tasks: ${r.tasks.total} (${r.tasks.succeed} succeed, ${r.tasks.failed} failed upstream); creates retried ${s.createRetries} times`,
    `webhooks: ${s.webhooks} processed, ${s.webhookRepeats} repeats of a webhook-id, ${s.webhooksRefused} answered 503 on purpose; failed jobs kept for the dashboard: ${s.failedJobsKept}`,
    `faults: ${Object.entries(r.faultCounts)
      .map(([name, n]) => `${name} ${n}`)
      .join(', ')}`,
  ];
  const width = Math.max(...r.checks.map((c) => c.name.length));
  for (const c of r.checks) {
    const verdict = c.violations.length ? `FAIL ${c.violations.length} violations` : 'ok';
    lines.push(`  ${c.name.padEnd(width)}  ${String(c.checked).padStart(6)} ${c.unit}  ${verdict}`);
    for (const v of c.violations.slice(0, SHOWN)) lines.push(`      ${v}`);
    if (c.violations.length > SHOWN) lines.push(`      ... and ${c.violations.length - SHOWN} more`);
  }
  lines.push(r.passed ? 'PASSED' : `FAILED (seed ${r.seed})`);
  if (r.logDir) lines.push(`logs of the service's processes and of Postgres: ${r.logDir}`);
  return lines.join('\n');
}
