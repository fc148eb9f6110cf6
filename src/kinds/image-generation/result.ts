import { z } from 'zod';
import type { TaskResult } from '../kind';

/** Kling's images as the upstream sends them: every field but the URL may be missing. */
export const UpstreamImages = z
  .object({
    images: z
      .array(z.object({ index: z.number().int().optional(), url: z.string(), watermark_url: z.string().optional() }).passthrough())
      .max(100)
      .nullish(),
  })
  .passthrough();

export const ResultImage = z.object({
  index: z.int(),
  url: z.string().describe('Image URL'),
  watermark_url: z.string().optional().describe('Watermarked image URL'),
});
export type ResultImage = z.infer<typeof ResultImage>;

export const ImagesResult = z.object({ images: z.array(ResultImage) });

/** The images as stored and shown: each with its index (its position when the upstream gave none). */
export function readImages(upstream: z.infer<typeof UpstreamImages>): TaskResult | null {
  const images = (upstream.images ?? []).map((img, i) => ({
    index: img.index ?? i,
    url: img.url,
    ...(img.watermark_url ? { watermark_url: img.watermark_url } : {}),
  }));
  return images.length ? { images } : null;
}
