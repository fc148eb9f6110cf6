import type { KindId, SimulatedKind, SlotPool } from '../kinds/kind';
import { KINDS } from '../kinds/registry';

/** One kind as the simulator serves it: Kling's path, the slot pool it counts in, its models. */
export interface SimKindRoute {
  id: KindId;
  path: string;
  pool: SlotPool;
  models: readonly string[];
  sim: SimulatedKind;
}

/** The kinds the simulator serves (every kind of the registry), at Kling's paths; images and videos have their own model lists. */
export function simulatorKinds(models: readonly string[], videoModels: readonly string[]): SimKindRoute[] {
  return KINDS.map((k) => ({
    id: k.id,
    path: k.path,
    pool: k.pool,
    models: k.models === 'image' ? models : videoModels,
    sim: k.simulator,
  }));
}
