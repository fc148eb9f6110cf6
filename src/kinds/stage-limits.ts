import type { KindId, StageLimits, TaskKind } from './kind';

/** A kind's name in environment variables: `text-to-video` is `TEXT_TO_VIDEO`. */
export const kindEnvName = (id: KindId) => id.toUpperCase().replace(/-/g, '_');

/**
 * The stage limits of each kind: its own, unless QUEUE/START/TOTAL_TIMEOUT_MS set one for every
 * kind, unless `<that>_<KIND>` sets it for this one. A `<STAGE>_TIMEOUT_MS_<NAME>` naming no kind
 * is a mistake said at start, not ignored.
 */
export function stageLimitsByKind(
  kinds: readonly TaskKind[],
  all: Partial<StageLimits>,
  perKind: Readonly<Record<string, Partial<StageLimits>>>,
): Map<KindId, StageLimits> {
  const known = new Set(kinds.map((k) => kindEnvName(k.id)));
  const unknown = Object.keys(perKind).filter((name) => !known.has(name));
  if (unknown.length) {
    throw new Error(`Invalid configuration: *_TIMEOUT_MS_${unknown[0]} names no task kind (kinds: ${[...known].join(', ')})`);
  }
  return new Map(
    kinds.map((k) => {
      const own = perKind[kindEnvName(k.id)] ?? {};
      const pick = (stage: keyof StageLimits) => own[stage] ?? all[stage] ?? k.stageLimits[stage];
      return [k.id, { queueMs: pick('queueMs'), startMs: pick('startMs'), totalMs: pick('totalMs') }];
    }),
  );
}
