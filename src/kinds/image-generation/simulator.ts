import { z } from 'zod';
import type { SimParams, SimulatedKind } from '../kind';
import { checkSimBody, pickSimModel } from '../shared/sim-body';
import { imageDimensions, renderPng, seedFromText } from './sim-png';

export const ASPECT_RATIOS = ['1:1', '16:9', '4:3', '3:2', '2:3', '3:4', '9:16', '21:9'] as const;
export const RESOLUTIONS = ['1k', '2k'] as const;

// Only the fields the simulator acts on are checked; like Kling, unknown fields pass through.
// null is treated as "absent", as Kling's JSON binding does for optional fields.
export const SimCreateRequest = z.object({
  prompt: z.string().min(1).max(2500),
  negative_prompt: z.string().max(2500).nullish(),
  model_name: z.string().nullish(),
  n: z.number().int().min(1).max(9).nullish(),
  aspect_ratio: z.enum(ASPECT_RATIOS).nullish(),
  resolution: z.enum(RESOLUTIONS).nullish(),
  callback_url: z.string().nullish(),
  external_task_id: z.string().nullish(),
  watermark_info: z.object({ enabled: z.boolean() }).nullish(),
});
export type SimCreateRequest = z.infer<typeof SimCreateRequest>;

interface ImageParams extends SimParams {
  n: number;
  aspectRatio: string;
  resolution: string;
}

/** Image generation as Kling plays it: `n` PNGs in the asked aspect ratio, holding `n` image slots. */
export const imageGenerationSimulator: SimulatedKind = {
  parse(body, models) {
    const checked = checkSimBody(SimCreateRequest, body);
    if (!checked.ok) return checked;
    const model = pickSimModel(checked.value.model_name, models);
    if (!model.ok) return model;
    const req = checked.value;
    const n = req.n ?? 1;
    const params: ImageParams = {
      modelName: model.value,
      slots: n,
      n,
      aspectRatio: req.aspect_ratio ?? '16:9',
      resolution: req.resolution ?? '1k',
      callbackUrl: req.callback_url || undefined,
      externalTaskId: req.external_task_id || undefined,
    };
    return { ok: true, params };
  },

  result({ params, fileBase }) {
    const { n } = params as ImageParams;
    return { images: Array.from({ length: n }, (_, index) => ({ index, url: `${fileBase}/${index}.png` })) };
  },

  file({ taskId, params }, name) {
    const { n, aspectRatio, resolution } = params as ImageParams;
    const match = /^(\d+)\.png$/.exec(name);
    if (!match || Number(match[1]) >= n) return undefined;
    const { width, height } = imageDimensions(aspectRatio, resolution);
    return { contentType: 'image/png', body: renderPng(width, height, seedFromText(`${taskId}/${match[1]}`)) };
  },
};
