import { z } from 'zod';
import { simulatedVideoKind, simVideoFields } from '../video/simulator';

// The simulator's reading of Kling's image2video body; the service's own validation is request.ts.
const SimImageToVideoRequest = z.object({
  ...simVideoFields,
  prompt: z.string().max(2500).nullish(),
  image: z.string().min(1).nullish(),
  image_tail: z.string().min(1).nullish(),
  static_mask: z.string().nullish(),
  dynamic_masks: z
    .array(z.object({ mask: z.string(), trajectories: z.array(z.object({ x: z.number(), y: z.number() })) }))
    .max(6)
    .nullish(),
});
type SimImageToVideoRequest = z.infer<typeof SimImageToVideoRequest>;

/** Image-to-video as Kling plays it: one 16:9 MP4 of the asked duration (the frames are not looked at). */
export const imageToVideoSimulator = simulatedVideoKind({
  schema: SimImageToVideoRequest,
  check: checkImageRules,
  aspectRatio: () => '16:9',
});

function checkImageRules(body: SimImageToVideoRequest): string | undefined {
  if (!body.image && !body.image_tail) return 'image: image or image_tail is required';
  for (const field of ['image', 'image_tail'] as const) {
    // Kling takes a URL or raw base64; a data: URL prefix is refused.
    if (body[field]?.startsWith('data:')) return `${field}: base64 must not carry a data: prefix`;
  }
  // At most one of: a tail frame, motion-brush masks, camera control.
  const controls = [body.image_tail, body.static_mask ?? body.dynamic_masks, body.camera_control].filter((value) => value != null);
  if (controls.length > 1) return 'image_tail, static_mask/dynamic_masks and camera_control cannot be combined';
  return undefined;
}
