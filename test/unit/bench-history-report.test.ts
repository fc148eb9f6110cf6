import { historyRows, type HistoryResults } from '../../scripts/bench/history-report';
import { memoryRows, type MemoryResults } from '../../scripts/bench/memory-report';

/**
 * The verdicts of `npm run bench -- --history` (each figure with history >= 0.8x of the same on the
 * empty database, from the mean of the windows; zero errors where a request can fail) and of
 * `--memory` (a process ending more than 10% above its start is flagged). The figures are made up:
 * what is tested is the arithmetic and the thresholds, not the machine.
 */
interface Figures {
  create: [number[], number[]];
  createErrors?: number;
  read: [number[], number[]];
  readErrors?: number;
  e2e: [number[], number[]];
}

function results(f: Figures): HistoryResults {
  const create = (rates: number[], errors = 0) =>
    rates.map((perSecond, i) => ({ perSecond, errors: i === 0 ? errors : 0, p50Ms: 10, p99Ms: 20, apiPeakRssKb: 1024 }));
  const reads = (rates: number[], errors = 0) =>
    rates.map((perSecond, i) => {
      const one = { perSecond, p50Ms: 1, p99Ms: 5, errors: i === 0 ? errors : 0, items: 30 };
      return { 'get by id': one, 'get by external id': one, 'list page 1': one, 'list page 1000': one };
    });
  const e2e = (rates: number[]) =>
    rates.map((perSecond) => ({ perSecond, pgPerTask: { commits: 5, inserted: 9, updated: 8, deleted: 0 } }));
  return {
    create: { empty: create(f.create[0]), history: create(f.create[1], f.createErrors) },
    reads: { empty: reads(f.read[0]), history: reads(f.read[1], f.readErrors) },
    e2e: { empty: e2e(f.e2e[0]), history: e2e(f.e2e[1]) },
  } as unknown as HistoryResults;
}

const verdict = (r: HistoryResults, prefix: string) => {
  const row = historyRows(r).find((x) => x[0].startsWith(prefix))!;
  return [row[3], row[4]];
};

it('says met at 0.8x, over the mean of the windows (the first ones alone are under it)', () => {
  const r = results({
    create: [
      [1000, 1000],
      [700, 900],
    ],
    read: [
      [500, 500],
      [350, 450],
    ],
    e2e: [
      [300, 300],
      [210, 270],
    ],
  });
  expect(verdict(r, 'create')).toEqual(['0.80x', '>= 0.8x, 0 errors: met']);
  expect(verdict(r, 'get by id: answers/s')).toEqual(['0.80x', '>= 0.8x, 0 errors: met']);
  expect(verdict(r, 'list page 1000: answers/s')).toEqual(['0.80x', '>= 0.8x, 0 errors: met']);
  expect(verdict(r, 'end to end')).toEqual(['0.80x', '>= 0.8x: met']);
});

it('says MISSED just under 0.8x, even when the rounded ratio reads 0.80x', () => {
  const r = results({ create: [[1000], [799.9]], read: [[1000], [799.9]], e2e: [[100], [79.99]] });
  expect(verdict(r, 'create')).toEqual(['0.80x', '>= 0.8x, 0 errors: MISSED']);
  expect(verdict(r, 'list page 1: answers/s')).toEqual(['0.80x', '>= 0.8x, 0 errors: MISSED']);
  expect(verdict(r, 'end to end')).toEqual(['0.80x', '>= 0.8x: MISSED']);
});

it('says MISSED for a create or a read with any error, however fast', () => {
  const r = results({ create: [[1000], [1200]], createErrors: 1, read: [[100], [100]], readErrors: 2, e2e: [[100], [100]] });
  expect(verdict(r, 'create')).toEqual(['1.20x', '>= 0.8x, 0 errors: MISSED']);
  expect(verdict(r, 'get by external id: answers/s')).toEqual(['1.00x', '>= 0.8x, 0 errors: MISSED']);
  expect(verdict(r, 'end to end')).toEqual(['1.00x', '>= 0.8x: met']);
});

function memory(rss: Record<string, number[]>): MemoryResults {
  const n = Object.values(rss)[0].length;
  const samples = Array.from({ length: n }, (_, i) => ({
    atS: i * 30,
    completed: i * 100,
    rssKb: Object.fromEntries(Object.entries(rss).map(([p, xs]) => [p, xs[i]])),
  }));
  return { samples } as unknown as MemoryResults;
}

it('flags a process whose samples rise more than 10% from the first third of the run to the last (medians), not one that only swings', () => {
  const rows = memoryRows(
    memory({
      // Swings between collections around the same level, ending on a high sample: steady.
      api: [200_000, 300_000, 210_000, 200_000, 320_000, 205_000, 210_000, 200_000, 330_000],
      // One release early, then flat: steady.
      worker: [210_000, 170_000, 212_000, 212_000, 212_000, 212_000, 212_000, 212_000, 212_000],
      // Rises by exactly 10%: steady; by a little more: flagged.
      simulator: [100_000, 100_000, 100_000, 105_000, 105_000, 105_000, 110_000, 110_000, 110_000],
      driver: [100_000, 100_000, 100_000, 105_000, 105_000, 105_000, 110_001, 110_001, 110_001],
    }),
  );
  expect(rows.map((r) => [r[0], r[6], r[7]])).toEqual([
    ['api', '+0.0%', 'steady'],
    ['worker', '+1.0%', 'steady'],
    ['simulator', '+10.0%', 'steady'],
    ['driver', '+10.0%', 'GROWS (over 10%)'],
  ]);
  expect(rows[0].slice(1, 6)).toEqual(['195 MB', '322 MB', '195 MB', '322 MB', '205 MB -> 205 MB']);
});
