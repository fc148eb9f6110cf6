import type { z } from 'zod';

// What Kling documents per video model generation. Names outside Kling's `kling-vX[-Y][-master|-turbo]`
// pattern get none of these rules: the upstream judges them.

/** Kling lists these for image2video only; its text2video model enum leaves them out. */
export const IMAGE_TO_VIDEO_ONLY_MODELS: readonly string[] = ['kling-v1-5', 'kling-v2-1'];

const V2_5 = 25;
const V2_6 = 26;
const V3 = 30;

/**
 * A model name's generation as major * 10 + minor (kling-v2-6 is 26, kling-v2-1-master 21, kling-v3
 * 30), or undefined for any other name.
 */
export function modelGeneration(model: string): number | undefined {
  const match = /^kling-v(\d)(?:-(\d))?(?:-(?:master|turbo))?$/.exec(model);
  return match ? Number(match[1]) * 10 + Number(match[2] ?? 0) : undefined;
}

const before = (model: string, generation: number): boolean => (modelGeneration(model) ?? Infinity) < generation;

/** The fields both video kinds share that Kling restricts per model. */
export type ModelKeyedFields = {
  model_name: string;
  mode?: string;
  sound?: string;
  duration?: string;
  multi_shot?: boolean;
};

/** Issues for values Kling documents as unsupported by the chosen model, in field order. */
export function checkModelRules(value: ModelKeyedFields, ctx: z.RefinementCtx): void {
  const model = value.model_name;
  if (value.multi_shot === true && before(model, V3)) {
    ctx.addIssue({ code: 'custom', path: ['multi_shot'], message: `needs a Kling 3.0 model (not ${model})` });
  }
  // Sound is documented for V2.6 and later; "off" is what older models do anyway, so only "on" is refused.
  if (value.sound === 'on' && before(model, V2_6)) {
    ctx.addIssue({ code: 'custom', path: ['sound'], message: `"on" needs a Kling V2.6 or later model (not ${model})` });
  }
  // Kling's capability map: V2.6 in std mode (720p) generates silent video only.
  if (value.sound === 'on' && modelGeneration(model) === V2_6 && value.mode !== 'pro') {
    ctx.addIssue({ code: 'custom', path: ['sound'], message: `"on" on ${model} needs mode "pro" (its std mode, 720p, is silent only)` });
  }
  if (value.mode === '4k' && before(model, V3)) {
    ctx.addIssue({ code: 'custom', path: ['mode'], message: `"4k" needs a Kling 3.0 model (${model} takes "std" or "pro")` });
  }
  if (value.duration !== undefined && value.duration !== '5' && value.duration !== '10' && before(model, V3)) {
    ctx.addIssue({
      code: 'custom',
      path: ['duration'],
      message: `must be "5" or "10" on ${model} (only Kling 3.0 models take "3" to "15")`,
    });
  }
}

/** Kling's capability map for first and last frame (image2video's image_tail) on the models that restrict it. */
export function tailFrameProblem(value: { model_name: string; mode?: string; sound?: string }): string | null {
  const generation = modelGeneration(value.model_name);
  if (generation === V2_6 && (value.mode !== 'pro' || value.sound === 'on')) {
    return `on ${value.model_name} needs mode "pro" and sound "off" (first and last frame is 1080p and silent only)`;
  }
  if (generation === V2_5 && value.mode !== 'pro') {
    return `on ${value.model_name} needs mode "pro" (first and last frame is 1080p only)`;
  }
  return null;
}

/** Model generation that voice_list needs, or null when the model has it. */
export function voiceListProblem(model: string): string | null {
  return before(model, V2_6) ? `needs a Kling V2.6 or later model (not ${model})` : null;
}
