import { imageGenerationSimulator } from '../kinds/image-generation/simulator';
import { imageToVideoSimulator } from '../kinds/image-to-video/simulator';
import type { KindId, SimulatedKind, SlotPool } from '../kinds/kind';
import { textToVideoSimulator } from '../kinds/text-to-video/simulator';

/** One kind as the simulator serves it: Kling's path, the slot pool it counts in, its models. */
export interface SimKindRoute {
  id: KindId;
  path: string;
  pool: SlotPool;
  models: readonly string[];
  sim: SimulatedKind;
}

/** The kinds the simulator serves, at Kling's paths; images and videos have their own model lists. */
export function simulatorKinds(models: readonly string[], videoModels: readonly string[]): SimKindRoute[] {
  return [
    { id: 'image-generation', path: '/v1/images/generations', pool: 'image', models, sim: imageGenerationSimulator },
    { id: 'text-to-video', path: '/v1/videos/text2video', pool: 'video', models: videoModels, sim: textToVideoSimulator },
    { id: 'image-to-video', path: '/v1/videos/image2video', pool: 'video', models: videoModels, sim: imageToVideoSimulator },
  ];
}
