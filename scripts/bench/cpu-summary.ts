/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and says where the time went: by package (self time),
 * by function (self time), and which of the service's own functions were on the stack
 * (inclusive time). Usage: node --import tsx scripts/bench/cpu-summary.ts FILE.cpuprofile...
 */
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './config';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
}

export interface Share {
  name: string;
  /** Percent of the busy (non-idle) samples. */
  pct: number;
}

export interface CpuSummary {
  file: string;
  wallS: number;
  /** Share of the wall time the process was on CPU (not idle). */
  busyPct: number;
  byPackage: Share[];
  topSelf: Share[];
  ownInclusive: Share[];
}

/** node_modules/<pkg> (scoped or not), the service's own directories, or what V8 calls it. */
function packageOf(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1];
  if (url.startsWith('node:')) return 'node: internals';
  const local = url.replace(/^file:\/\//, '');
  if (local.startsWith(ROOT)) {
    const rel = path.relative(ROOT, local);
    if (rel.startsWith('src/generated')) return '@prisma/client (generated)';
    return `service: ${rel.split('/').slice(0, 2).join('/')}`;
  }
  return local;
}

const isOwn = (url: string) => {
  const rel = path.relative(ROOT, url.replace(/^file:\/\//, ''));
  return (
    !rel.startsWith('..') &&
    !rel.includes('node_modules') &&
    !rel.startsWith('src/generated') &&
    (rel.startsWith('src/') || rel.startsWith('workers/'))
  );
};

const label = (f: ProfileNode['callFrame']) =>
  `${f.functionName || '(anonymous)'} ${path.relative(ROOT, f.url.replace(/^file:\/\//, '')) || f.url}:${f.lineNumber + 1}`;

function shares(counts: Map<string, number>, total: number, limit: number): Share[] {
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([name, n]) => ({ name, pct: (100 * n) / Math.max(total, 1) }));
}

export function summarise(file: string, limit = 15): CpuSummary {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const pkg = new Map<string, number>();
  const self = new Map<string, number>();
  const own = new Map<string, number>();
  let busy = 0;
  const add = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  for (const id of profile.samples) {
    const node = byId.get(id)!;
    if (node.callFrame.functionName === '(idle)') continue;
    busy++;
    add(pkg, packageOf(node.callFrame));
    add(self, label(node.callFrame));
    // Each of our functions on this stack counts once (recursion must not count twice).
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (isOwn(f.url)) seen.add(label(f));
    }
    for (const k of seen) add(own, k);
  }
  return {
    file,
    wallS: (profile.endTime - profile.startTime) / 1e6,
    busyPct: (100 * busy) / Math.max(profile.samples.length, 1),
    byPackage: shares(pkg, busy, limit),
    topSelf: shares(self, busy, limit),
    ownInclusive: shares(own, busy, limit),
  };
}

export function formatSummary(s: CpuSummary): string {
  const list = (title: string, xs: Share[]) => [title, ...xs.map((x) => `  ${x.pct.toFixed(1).padStart(5)}%  ${x.name}`)];
  return [
    `${path.basename(s.file)}: ${s.wallS.toFixed(1)} s profiled, on CPU ${s.busyPct.toFixed(0)}% of it`,
    ...list('self time by package (% of CPU time):', s.byPackage),
    ...list('self time by function:', s.topSelf),
    ...list("the service's own functions on the stack (inclusive):", s.ownInclusive),
  ].join('\n');
}

if (require.main === module) {
  for (const file of process.argv.slice(2)) console.log(`${formatSummary(summarise(file))}\n`);
}
