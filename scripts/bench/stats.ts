/** Small statistics and formatting helpers of the benchmark. */

/** Nearest-rank percentile of unsorted samples (p in 0..100); NaN without samples. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

export const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

export function fmt(n: number, digits = 1): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n >= 100 ? Math.round(n).toString() : n.toFixed(digits);
}

export const mb = (kb: number) => `${fmt(kb / 1024)} MB`;

export const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
export const ratio = (s: number, b: number) => (Number.isFinite(s / b) ? `${(s / b).toFixed(2)}x` : 'n/a');
export const met = (ok: boolean) => (ok ? 'met' : 'MISSED');

/** One row of a comparison table: the service's figure, the bare pipeline's, their ratio, the verdict on a target. */
export function compareRow(name: string, [sv, bv]: number[], unit = '', target = ''): string[] {
  return [name, `${fmt(sv)}${unit}`, `${fmt(bv)}${unit}`, ratio(sv, bv), target];
}

/** A plain text table with aligned columns (the terminal output) ... */
export function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** ... and the same as Markdown, to paste into a document or an issue. */
export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n');
}

/** Progress lines with the elapsed time, to stderr so that stdout stays the report. */
const started = Date.now();
export function progress(msg: string): void {
  const s = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[${s}s] ${msg}\n`);
}
