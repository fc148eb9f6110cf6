import { comparisonRows, type RunResults } from '../../scripts/bench/report';

/**
 * The benchmark's verdicts on the targets (create >= 0.7x with zero errors, end to end
 * >= 0.5x), computed per task kind from the mean of every window of each pipeline. The figures are
 * made up here: what is tested is the arithmetic and the thresholds, not the machine.
 */
interface KindFigures {
  create: [number[], number[]];
  errors?: number;
  e2e: [number[], number[]];
}

function results(kinds: Record<string, KindFigures>): RunResults {
  const createWindows = (rates: number[], errors = 0) =>
    rates.map((perSecond, i) => ({ perSecond, errors: i === 0 ? errors : 0, p50Ms: 10, p99Ms: 20, apiPeakRssKb: 1024 }));
  const e2eWindows = (rates: number[]) =>
    rates.map((perSecond) => ({
      perSecond,
      pgPerTask: { commits: 5, inserted: 1, updated: 2, deleted: 0 },
      peakRssKb: { api: 1024, worker: 2048 },
      latency: { p50Ms: 3, p99Ms: 6 },
    }));
  const each = <T>(f: (k: KindFigures) => T) => Object.fromEntries(Object.entries(kinds).map(([name, k]) => [name, f(k)]));
  return {
    kinds: Object.keys(kinds),
    create: each((k) => ({ service: createWindows(k.create[0], k.errors), bare: createWindows(k.create[1]) })),
    e2e: each((k) => ({ service: e2eWindows(k.e2e[0]), bare: e2eWindows(k.e2e[1]) })),
  } as unknown as RunResults;
}

const verdicts = (r: RunResults, kind: string) => {
  const rows = comparisonRows(r);
  const find = (prefix: string) => rows.find((row) => row[0].startsWith(`${kind} ${prefix}`))!;
  const create = find('create: accepted/s');
  const e2e = find('end to end: tasks/s');
  return { create: [create[3], create[4]], e2e: [e2e[3], e2e[4]] };
};

it('says met at the thresholds, over the mean of the windows (the first ones alone are under them)', () => {
  const r = results({
    image: {
      create: [
        [600, 800],
        [1000, 1000],
      ],
      e2e: [
        [200, 300],
        [500, 500],
      ],
    },
  });
  expect(verdicts(r, 'image')).toEqual({
    create: ['0.70x', '>= 0.7x, 0 errors: met'],
    e2e: ['0.50x', '>= 0.5x: met'],
  });
});

it('says MISSED just under a threshold, even when the rounded ratio reads the same', () => {
  const r = results({ image: { create: [[699.6], [1000]], e2e: [[49.99], [100]] } });
  expect(verdicts(r, 'image')).toEqual({
    create: ['0.70x', '>= 0.7x, 0 errors: MISSED'],
    e2e: ['0.50x', '>= 0.5x: MISSED'],
  });
});

it('says MISSED for create when any window had an error, whatever the rate', () => {
  const r = results({
    image: {
      create: [
        [900, 900],
        [1000, 1000],
      ],
      errors: 1,
      e2e: [[60], [100]],
    },
  });
  expect(verdicts(r, 'image').create).toEqual(['0.90x', '>= 0.7x, 0 errors: MISSED']);
});

it("judges each kind against its own bare windows: one kind's misses and errors do not touch another's verdict", () => {
  const r = results({
    image: { create: [[800], [1000]], e2e: [[60], [100]] },
    text2video: { create: [[600], [1000]], errors: 2, e2e: [[40], [100]] },
  });
  expect(verdicts(r, 'image')).toEqual({
    create: ['0.80x', '>= 0.7x, 0 errors: met'],
    e2e: ['0.60x', '>= 0.5x: met'],
  });
  expect(verdicts(r, 'text2video')).toEqual({
    create: ['0.60x', '>= 0.7x, 0 errors: MISSED'],
    e2e: ['0.40x', '>= 0.5x: MISSED'],
  });
});
