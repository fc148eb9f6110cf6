import { FAULTS } from '../../scripts/soak/chaos';
import { formatReport } from '../../scripts/soak/report';
import { runSoak } from '../../scripts/soak/soak';

/**
 * The chaos soak of `npm run soak`, short: 36 s of load in which every kind of fault comes at least
 * once (a shuffled deck of the six, one every 3 to 5 s), with a fixed seed, so that a failure can be
 * replayed with `npm run soak -- --minutes 0.6 --rate 3 --seed 20251203`.
 */
const SEED = 20251203;
jest.setTimeout(300_000);

it('kills processes, empties Redis, restarts Postgres and fails the upstream under load, and every invariant holds after the drain', async () => {
  const report = await runSoak({ seed: SEED, loadMs: 36_000, ratePerSec: 3, drainMs: 90_000 });
  console.log(formatReport(report));
  expect(FAULTS.filter((f) => report.faultCounts[f] === 0)).toEqual([]);
  expect(report.tasks.total).toBeGreaterThan(60);
  expect(report.checks.filter((c) => c.violations.length > 0)).toEqual([]);
});
