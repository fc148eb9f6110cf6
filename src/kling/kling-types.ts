import { z } from 'zod';

/**
 * A task object as the upstream sends it (create answer, query answer, callback body). Lenient on
 * purpose: Kling documents that every field but task_id and task_status may be missing.
 */
export const UpstreamTask = z
  .object({
    task_id: z.string().min(1).max(256),
    task_status: z.string().min(1).max(64),
    task_status_msg: z.string().max(10_000).nullish(),
    task_info: z.object({ external_task_id: z.string().nullish() }).passthrough().nullish(),
    task_result: z
      .object({
        images: z
          .array(z.object({ index: z.number().int().optional(), url: z.string(), watermark_url: z.string().optional() }).passthrough())
          .max(100)
          .nullish(),
      })
      .passthrough()
      .nullish(),
    created_at: z.number().nullish(),
    updated_at: z.number().nullish(),
  })
  .passthrough();
export type UpstreamTask = z.infer<typeof UpstreamTask>;

export interface ResultImage {
  index: number;
  url: string;
  watermark_url?: string;
}

export function imagesOf(task: UpstreamTask): ResultImage[] {
  return (task.task_result?.images ?? []).map((img, i) => ({
    index: img.index ?? i,
    url: img.url,
    ...(img.watermark_url ? { watermark_url: img.watermark_url } : {}),
  }));
}
