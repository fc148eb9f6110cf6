import { startChaos, FAULTS, type FaultName, type FaultRecord } from './chaos';
import { startClientLoad } from './client-load';
import { checkInvariants, type CheckResult } from './invariants';
import { seededRandom } from './random';
import { leftToDo, readJobs, readRows } from './soak-state';
import { QUEUE_PREFIX, startStack, type SoakStack } from './soak-stack';

export interface SoakOptions {
  seed: number;
  /** How long the load and the faults run. */
  loadMs: number;
  /** Creates per second. */
  ratePerSec: number;
  /** How long the drain may take before what is left counts as a violation. */
  drainMs: number;
  /** Keep the service's logs even when every check holds (they are always kept when one fails). */
  keepLogs?: boolean;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

export interface SoakReport {
  seed: number;
  loadMs: number;
  ratePerSec: number;
  /** From the end of the load to nothing left to do (the faults under way ending included). */
  drainedInMs: number;
  tasks: { total: number; succeed: number; failed: number };
  stats: { createRetries: number; webhooks: number; webhookRepeats: number; webhooksRefused: number; failedJobsKept: number };
  faultCounts: Record<FaultName, number>;
  faults: FaultRecord[];
  checks: CheckResult[];
  passed: boolean;
  /** Where the processes' logs are, when kept. */
  logDir?: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The pause before each fault, drawn in [min, max] ms: short runs (up to two minutes) get one every 3
 * to 5 s, so that all six kinds come within half a minute; longer ones every 5 to 15 s, with quiet
 * spells between.
 */
function faultGapFor(loadMs: number): readonly [number, number] {
  return loadMs <= 120_000 ? [3_000, 5_000] : [5_000, 15_000];
}

/**
 * The chaos soak: two API and two worker processes against the simulator under a steady load with
 * client webhooks, while processes are killed, Redis comes back empty, Postgres restarts and the
 * upstream fails for a while; then a drain and the invariants. Everything it starts is stopped and
 * removed when it ends; the logs are kept when a check failed.
 */
export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const startedAt = Date.now();
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const stamped = (line: string) => log(`[${((Date.now() - startedAt) / 1000).toFixed(1).padStart(6)} s] ${line}`);
  stamped(`soak: seed ${o.seed}, ${Math.round(o.loadMs / 1000)} s of load at ${o.ratePerSec} tasks/s`);
  // One stream per part, so that each replays the same choices whatever the timing between them.
  const stack = await startStack(seededRandom(o.seed + 2), stamped);
  let report: SoakReport | undefined;
  try {
    report = await soakAndCheck(stack, o, stamped);
    return report;
  } finally {
    stamped('stopping everything');
    const keepLogs = o.keepLogs || !report?.passed;
    await stack.close(!keepLogs);
    if (report && keepLogs) report.logDir = stack.logDir;
  }
}

async function soakAndCheck(stack: SoakStack, o: SoakOptions, log: (line: string) => void): Promise<SoakReport> {
  const loadStart = Date.now();
  const load = startClientLoad({
    baseUrl: stack.balancer.url,
    apiKey: stack.apiKey,
    callbackUrl: stack.receiver.url,
    ratePerSec: o.ratePerSec,
    random: seededRandom(o.seed),
    runId: `soak-${o.seed}`,
  });
  const chaos = startChaos(stack, { random: seededRandom(o.seed + 1), gapMs: faultGapFor(o.loadMs), startedAt: loadStart, log });
  while (Date.now() - loadStart < o.loadMs) {
    await sleep(Math.min(10_000, o.loadMs - (Date.now() - loadStart)));
    log(
      `load: ${load.accepted.size} accepted, ${load.unanswered().length} waiting for an answer, ${stack.receiver.arrivals.length} webhooks`,
    );
  }
  log('load over: no more creates nor faults; waiting for the faults under way to end and every create to be answered');
  const drainStart = Date.now();
  await Promise.all([chaos.stop(), load.stop(o.drainMs)]);
  log(`every create answered (${load.unanswered().length} given up on); waiting for the tasks to end`);
  await drain(stack, Math.max(1000, o.drainMs - (Date.now() - drainStart)), log);
  const drainedInMs = Date.now() - drainStart;
  // Stopped before the final read, so that the stores, the receiver and the upstream are compared
  // at rest, even when the drain ran out of time.
  const processes = [...stack.apis, ...stack.workers];
  await Promise.all(processes.map((p) => p.stop()));
  const state = { ...(await readRows(stack.databaseUrl)), ...(await readJobs(stack.redis.url, QUEUE_PREFIX)) };

  const checks = checkInvariants(state, {
    accepted: load.accepted,
    refusedCreates: [
      ...load.refused.map((r) => `create ${r.index}: refused ${r.status} ${r.body}`),
      ...load.unanswered().map((i) => `create ${i}: no answer by the end of the drain`),
    ],
    arrivals: stack.receiver.arrivals,
    badSignatures: stack.receiver.badSignatures(),
    upstreamTasks: stack.sim.tasks.values(),
    unexpectedExits: processes.flatMap((p) => p.unexpectedExits.map((e) => `${e.process}: exit code ${e.code}, signal ${e.signal}`)),
    processes: processes.length,
  });
  checks.push({ name: 'every fault carried out', checked: chaos.faults.length, unit: 'faults', violations: chaos.errors });
  const faultCounts = Object.fromEntries(FAULTS.map((f) => [f, chaos.faults.filter((r) => r.name === f).length])) as Record<
    FaultName,
    number
  >;
  return {
    seed: o.seed,
    loadMs: o.loadMs,
    ratePerSec: o.ratePerSec,
    drainedInMs,
    tasks: {
      total: state.tasks.length,
      succeed: state.tasks.filter((t) => t.state === 'succeed').length,
      failed: state.tasks.filter((t) => t.state === 'failed').length,
    },
    stats: {
      createRetries: load.retries(),
      webhooks: stack.receiver.arrivals.length,
      webhookRepeats: stack.receiver.repeats(),
      webhooksRefused: stack.receiver.refusedOnPurpose(),
      failedJobsKept: state.failedJobs,
    },
    faultCounts,
    faults: chaos.faults,
    checks,
    passed: checks.every((c) => c.violations.length === 0),
  };
}

/** Waits (bounded) until nothing is left to do: every task ended, no delivery pending, no live submit or deliver job. */
async function drain(stack: SoakStack, timeoutMs: number, log: (line: string) => void): Promise<void> {
  const until = Date.now() + timeoutMs;
  let lastLog = 0;
  for (;;) {
    const left = await leftToDo(stack.databaseUrl, stack.redis.url, QUEUE_PREFIX);
    if (left.unfinished === 0 && left.pending === 0 && left.liveJobs === 0) return;
    if (Date.now() > until) return log(`drain: out of time with ${left.unfinished} tasks unfinished, ${left.pending} webhooks pending`);
    if (Date.now() - lastLog > 5000) {
      lastLog = Date.now();
      const oldest = left.examples.length ? ` (oldest: ${left.examples.join('; ')})` : '';
      log(`drain: ${left.unfinished} tasks unfinished${oldest}, ${left.pending} webhooks pending, ${left.liveJobs} live jobs`);
    }
    await sleep(500);
  }
}
