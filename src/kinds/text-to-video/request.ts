import { z } from 'zod';
import type { Validation } from '../kind';
import { callbackUrlField, expecting, externalTaskIdField, modelNameField, watermarkInfoField } from '../shared/fields';
import { memoiseByModels, validateBody } from '../shared/validate-body';
import { checkModelRules, IMAGE_TO_VIDEO_ONLY_MODELS } from '../video/models';
import {
  aspectRatioField,
  cameraControlField,
  cfgScaleField,
  checkMultiShotRules,
  durationField,
  isCustomMultiShot,
  modeField,
  multiShotFields,
  negativePromptField,
  promptField,
  requirePrompt,
  soundField,
} from '../video/request-rules';

// The body of POST /v1/videos/text2video, as Kling's API reference documents it. Only what the
// client sent is forwarded: defaults other than model_name are left to the upstream.

/**
 * Kling's documented defaults for fields a client may leave out. Not sent upstream (the upstream
 * applies them itself); used where two requests must compare equal whether a default was spelled
 * out or not (the Idempotency-Key's request hash).
 */
export const TEXT_TO_VIDEO_UPSTREAM_DEFAULTS = {
  multi_shot: false,
  cfg_scale: 0.5,
  mode: 'std',
  sound: 'off',
  aspect_ratio: '16:9',
  duration: '5',
} as const;

function buildShape(models: readonly string[]) {
  const textModels = models.filter((model) => !IMAGE_TO_VIDEO_ONLY_MODELS.includes(model));
  const imageOnly = (input: string) =>
    IMAGE_TO_VIDEO_ONLY_MODELS.includes(input) && models.includes(input)
      ? `${input} is an image2video model; text2video takes: ${textModels.join(', ')}`
      : undefined;
  return {
    model_name: modelNameField(textModels, imageOnly),
    prompt: promptField('Positive text prompt (at most 2500 characters); may be left out only with multi_shot and shot_type customize'),
    ...multiShotFields,
    negative_prompt: negativePromptField,
    cfg_scale: cfgScaleField,
    mode: modeField,
    sound: soundField,
    camera_control: cameraControlField,
    aspect_ratio: aspectRatioField('Aspect ratio (width:height) of the video (upstream default 16:9)'),
    duration: durationField,
    watermark_info: watermarkInfoField,
    callback_url: callbackUrlField,
    external_task_id: externalTaskIdField,
  };
}

type Shape = z.output<z.ZodObject<ReturnType<typeof buildShape>>>;

// Rules spanning fields, in field order. zod runs this only once every field has the right type.
function checkCrossFieldRules(value: Shape, ctx: z.RefinementCtx): void {
  // Kling takes a custom multi-shot video's text from multi_prompt; every other text2video needs a prompt.
  if (!isCustomMultiShot(value)) requirePrompt(value.prompt, ctx);
  checkMultiShotRules(value, ctx);
  checkModelRules(value, ctx);
}

/**
 * Schema of the text2video create body. `models` is the configured video allow-list; text2video
 * takes those Kling offers for it, and the first of them is the default.
 */
export function buildTextToVideoRequest(models: readonly string[]) {
  if (models.length === 0) throw new Error('buildTextToVideoRequest: at least one model name must be configured');
  if (models.every((model) => IMAGE_TO_VIDEO_ONLY_MODELS.includes(model))) {
    throw new Error(`buildTextToVideoRequest: at least one configured video model must support text2video (not ${models.join(', ')})`);
  }
  return z
    .object(buildShape(models), { error: expecting('a JSON object') })
    .strict()
    .superRefine(checkCrossFieldRules)
    .describe('Kling text-to-video request (POST /v1/videos/text2video)');
}

export type TextToVideoRequest = z.output<ReturnType<typeof buildTextToVideoRequest>>;

const schemaFor = memoiseByModels(buildTextToVideoRequest);

/** Validates a text2video create body: the request as it will be stored, or the first problem. Never throws for any body. */
export function validateTextToVideoRequest(body: unknown, models: readonly string[]): Validation<TextToVideoRequest> {
  return validateBody(schemaFor(models), body);
}
