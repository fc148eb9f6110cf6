import { z } from 'zod';
import { simulatedVideoKind, simVideoFields, VIDEO_ASPECT_RATIOS } from '../video/simulator';

// The simulator's reading of Kling's text2video body; the service's own validation is request.ts.
const SimTextToVideoRequest = z.object({
  ...simVideoFields,
  prompt: z.string().max(2500),
  aspect_ratio: z.enum(VIDEO_ASPECT_RATIOS).nullish(),
  multi_shot: z.boolean().nullish(),
});

/** Text-to-video as Kling plays it: one MP4 of the asked duration and aspect ratio. */
export const textToVideoSimulator = simulatedVideoKind({
  schema: SimTextToVideoRequest,
  // A multi-shot task takes its prompts from multi_prompt, so only then may prompt be empty.
  check: (body) => (body.prompt === '' && body.multi_shot !== true ? 'prompt: must not be empty' : undefined),
  aspectRatio: (body) => body.aspect_ratio ?? '16:9',
});
