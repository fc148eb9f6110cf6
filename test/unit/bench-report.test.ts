import { drainFigures, type OverloadWindow } from '../../scripts/bench/phase-overload';
import { comparisonRows, printReport, type RunResults } from '../../scripts/bench/report';
import type { CallbackStats } from '../../scripts/bench/sim-protocol';

/**
 * The benchmark's verdicts on the targets (create >= 0.7x with zero errors, end to end
 * >= 0.5x; under overload, goodput >= 0.5x with zero failed callbacks and a callback p99 under a
 * second), computed per task kind from the mean of every window of each pipeline. The figures are
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

describe('the overload phase', () => {
  /** A window of made-up figures: `goodput` tasks/s over the drain, and what the upstream saw of its callbacks. */
  const window = (goodput: number, callbacks: Partial<CallbackStats> = {}): OverloadWindow => ({
    tasks: 1000,
    createErrors: 0,
    createS: 1,
    drainS: 1000 / goodput,
    drained: true,
    goodput,
    steadyGoodput: goodput,
    steadyWindowS: [10, 20],
    seconds: [],
    succeeded: 1000,
    failed: 0,
    unfinished: 0,
    upstreamCreated: 1000,
    callbacks: { sent: 2000, ok: 2000, timeouts: 0, connectionErrors: 0, non2xx: 0, p50Ms: 5, p99Ms: 50, ...callbacks },
    peakRssKb: { api: 1024, worker: 2048 },
  });
  /** Only the overload phase ran (BENCH_PHASES=overload): the create and end-to-end windows are empty. */
  const run = (service: OverloadWindow[], bare: OverloadWindow[]): RunResults =>
    ({
      machine: { date: '', cpus: 2, cpuModel: '', memoryGb: 1, node: '', postgres: '', redis: '', commit: '' },
      kinds: ['image'],
      create: { image: { service: [], bare: [] } },
      e2e: { image: { service: [], bare: [] } },
      overload: { kind: 'image', backlog: 1000, service, bare },
    }) as RunResults;
  const verdict = (r: RunResults) => comparisonRows(r).find((row) => row[0].startsWith('image overload: goodput, tasks/s over the drain'))!;
  const MET = '>= 0.5x, 0 failed callbacks, callback p99 < 1000 ms: met';
  const MISSED = '>= 0.5x, 0 failed callbacks, callback p99 < 1000 ms: MISSED';

  it('says met at 0.5x the bare goodput (mean of the windows), no failed callback and a p99 under a second', () => {
    const r = run([window(40, { p99Ms: 999 }), window(60)], [window(100), window(100)]);
    expect(verdict(r).slice(1)).toEqual(['50.0', '100', '0.50x', MET]);
    expect(printReport(r)).toContain(
      'image overload verdict: goodput 0.50x (>= 0.5x: met), failed callbacks 0 (0: met), callback p99 999 ms',
    );
  });

  it('says MISSED just under 0.5x, even when the rounded ratio reads the same', () => {
    expect(verdict(run([window(49.99)], [window(100)])).slice(3)).toEqual(['0.50x', MISSED]);
  });

  it.each(['timeouts', 'connectionErrors', 'non2xx'] as const)('says MISSED on a single failed callback (%s) in any window', (kind) => {
    const r = run([window(90), window(90, { [kind]: 1 })], [window(100), window(100)]);
    expect(verdict(r)[4]).toBe(MISSED);
    expect(printReport(r)).toContain('failed callbacks 1 (0: MISSED)');
  });

  it("says MISSED when the worst window's callback p99 reaches a second", () => {
    expect(verdict(run([window(90, { p99Ms: 10 }), window(90, { p99Ms: 1000 })], [window(100), window(100)]))[4]).toBe(MISSED);
  });

  it("judges the service alone: the bare pipeline's failed or slow callbacks do not touch the verdict", () => {
    expect(verdict(run([window(90)], [window(100, { timeouts: 5, p99Ms: 5000 })]))[4]).toBe(MET);
  });

  it("says at which level the service's processes logged", () => {
    expect(printReport({ ...run([window(90)], [window(100)]), logLevel: 'info' })).toContain(
      "logs: the service's processes at LOG_LEVEL=info (BENCH_LOG_LEVEL)",
    );
  });

  it('reports only the phases that ran', () => {
    const rows = comparisonRows(run([window(90)], [window(100)])).map((row) => row[0]);
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((name) => name.startsWith('image overload: '))).toBe(true);
  });
});

describe('the overload drain figures', () => {
  /** 100 tasks succeeding 10 a second from t = 0 to 10 s, sampled every half second. */
  const samples = Array.from({ length: 21 }, (_, i) => ({ t: i / 2, succeeded: i * 5, failed: 0 }));

  it('gives goodput over the whole drain, over the steady window (after the skip, until 90% succeeded), and per second', () => {
    expect(drainFigures(samples, 100, 2)).toEqual({ goodput: 10, steadyGoodput: 10, steadyWindowS: [2, 9], seconds: Array(10).fill(10) });
  });

  it('has no steady window when the drain ends before the skip does', () => {
    expect(drainFigures(samples, 100, 20)).toMatchObject({ goodput: 10, steadyGoodput: NaN, steadyWindowS: [NaN, NaN] });
  });

  it('counts goodput until the last success: tasks that never end (a lost callback) do not stretch it', () => {
    // 95 of the 100 succeed by 9.5 s, then nothing more ends until the drain gives up at 20 s.
    const stalled = [...samples.slice(0, 20), ...Array.from({ length: 22 }, (_, i) => ({ t: 9.5 + i / 2, succeeded: 95, failed: 0 }))];
    expect(drainFigures(stalled, 100, 2)).toMatchObject({ goodput: 10, steadyGoodput: 10, steadyWindowS: [2, 9] });
  });
});
