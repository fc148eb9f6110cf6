import { imageGeneration } from './image-generation';
import { imageToVideo } from './image-to-video';
import type { TaskKind } from './kind';
import { textToVideo } from './text-to-video';

/**
 * Every task kind this service serves. Routes, workers, the OpenAPI document, metrics labels and
 * the simulator are built from this list: a new kind is a folder and one line here.
 */
export const KINDS: readonly TaskKind[] = [imageGeneration, textToVideo, imageToVideo];

const byId = new Map<string, TaskKind>(KINDS.map((k) => [k.id, k]));

/** The kind of a stored task; a kind this version does not know is a deployment error, not a task to guess at. */
export function kindOf(id: string): TaskKind {
  const kind = byId.get(id);
  if (!kind) throw new Error(`unknown task kind ${JSON.stringify(id)} (stored by another version?)`);
  return kind;
}
