/**
 * `npm run soak -- [--minutes N] [--seed S] [--rate R] [--keep-logs]`: the chaos soak (scripts/soak/soak.ts).
 * Prints progress to stderr, the report to stdout; exits 1 when any invariant was violated.
 */
import { parseArgs } from 'node:util';
import { cleanUpNow } from './cleanup';
import { formatReport } from './report';
import { runSoak } from './soak';

function options() {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '10' },
      seed: { type: 'string' },
      rate: { type: 'string', default: '4' },
      'keep-logs': { type: 'boolean', default: false },
    },
  });
  const number = (name: string, raw: string | undefined, ok: (n: number) => boolean) => {
    const n = Number(raw);
    if (!ok(n)) throw new Error(`--${name}: ${JSON.stringify(raw)} is not a valid value`);
    return n;
  };
  const minutes = number('minutes', values.minutes, (n) => n > 0);
  return {
    loadMs: Math.round(minutes * 60_000),
    seed: values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : number('seed', values.seed, Number.isSafeInteger),
    ratePerSec: number('rate', values.rate, (n) => n > 0 && n <= 200),
    drainMs: 180_000,
    keepLogs: values['keep-logs'],
  };
}

async function main(): Promise<void> {
  // However it ends, the private Postgres, Redis and the service's processes go with it.
  process.on('exit', cleanUpNow);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\n${signal}: stopping the soak's processes and removing its Postgres cluster\n`);
      cleanUpNow();
      process.exit(130);
    });
  }
  const report = await runSoak(options());
  console.log(formatReport(report));
  process.exit(report.passed ? 0 : 1);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(2);
});
