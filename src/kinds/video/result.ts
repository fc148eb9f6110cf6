import { z } from 'zod';
import type { TaskResult } from '../kind';

/** Kling's videos as the upstream sends them: `duration` is seconds as a string, every field but the URL may be missing. */
export const UpstreamVideos = z
  .object({
    videos: z
      .array(
        z
          .object({
            id: z.string().max(256).optional(),
            url: z.string(),
            watermark_url: z.string().optional(),
            duration: z.union([z.string().max(32), z.number()]).optional(),
          })
          .passthrough(),
      )
      .max(100)
      .nullish(),
  })
  .passthrough();

export const ResultVideo = z.object({
  id: z.string().describe("The upstream's id of the video"),
  url: z.string().describe('Video URL (MP4)'),
  duration: z.string().describe('Length in seconds, as Kling gives it (a string)'),
  watermark_url: z.string().optional().describe('Watermarked video URL'),
});

export const VideosResult = z.object({ videos: z.array(ResultVideo) });

/** The videos as stored and shown, in Kling's shape `{id, url, duration}`. */
export function readVideos(upstream: z.infer<typeof UpstreamVideos>): TaskResult | null {
  const videos = (upstream.videos ?? []).map((v) => ({
    id: v.id ?? '',
    url: v.url,
    duration: v.duration === undefined ? '' : String(v.duration),
    ...(v.watermark_url ? { watermark_url: v.watermark_url } : {}),
  }));
  return videos.length ? { videos } : null;
}
