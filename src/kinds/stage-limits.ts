import type { KindId, StageLimits, TaskKind } from './kind';

/** A kind's name in environment variables: `text-to-video` is `TEXT_TO_VIDEO`. */
export const kindEnvName = (id: KindId) => id.toUpperCase().replace(/-/g, '_');

/** A stage's name in environment variables: `startMs` is `START_TIMEOUT_MS`. */
const STAGE_ENV_NAME: Record<keyof StageLimits, string> = { queueMs: 'QUEUE', startMs: 'START', totalMs: 'TOTAL' };

/**
 * The stage limits of each kind: its own, unless QUEUE/START/TOTAL_TIMEOUT_MS set one for every
 * kind, unless `<that>_<KIND>` sets it for this one. A `<STAGE>_TIMEOUT_MS_<NAME>` naming no kind
 * is a mistake said at start, naming the variable as the operator wrote it, not ignored.
 */
export function stageLimitsByKind(
  kinds: readonly TaskKind[],
  all: Partial<StageLimits>,
  perKind: Readonly<Record<string, Partial<StageLimits>>>,
): Map<KindId, StageLimits> {
  const known = new Set(kinds.map((k) => kindEnvName(k.id)));
  const unknown = Object.entries(perKind)
    .filter(([name]) => !known.has(name))
    .flatMap(([name, stages]) =>
      (Object.keys(stages) as (keyof StageLimits)[]).map((stage) => `${STAGE_ENV_NAME[stage]}_TIMEOUT_MS_${name}`),
    );
  if (unknown.length) {
    const kindList = [...known].join(', ');
    throw new Error(`Invalid configuration:\n${unknown.map((name) => `  ${name}: names no task kind (kinds: ${kindList})`).join('\n')}`);
  }
  return new Map(
    kinds.map((k) => {
      const own = perKind[kindEnvName(k.id)] ?? {};
      const pick = (stage: keyof StageLimits) => own[stage] ?? all[stage] ?? k.stageLimits[stage];
      return [k.id, { queueMs: pick('queueMs'), startMs: pick('startMs'), totalMs: pick('totalMs') }];
    }),
  );
}
