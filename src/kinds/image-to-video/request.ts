import { z } from 'zod';
import type { Validation } from '../kind';
import {
  callbackUrlField,
  checkImage,
  elementReference,
  expecting,
  externalTaskIdField,
  modelNameField,
  rule,
  watermarkInfoField,
} from '../shared/fields';
import { memoiseByModels, validateBody } from '../shared/validate-body';
import { checkModelRules } from '../video/models';
import {
  aspectRatioField,
  cameraControlField,
  cfgScaleField,
  checkMultiShotRules,
  durationField,
  modeField,
  multiShotFields,
  negativePromptField,
  promptField,
  requirePrompt,
  soundField,
} from '../video/request-rules';
import { checkImageToVideoRules } from './image-to-video-rules';

// The body of POST /v1/videos/image2video, as Kling's API reference documents it. Only what the
// client sent is forwarded: defaults other than model_name are left to the upstream.

/**
 * Kling's documented defaults for fields a client may leave out. Not sent upstream (the upstream
 * applies them itself); used where two requests must compare equal whether a default was spelled
 * out or not (the Idempotency-Key's request hash). image2video has no documented aspect_ratio.
 */
export const IMAGE_TO_VIDEO_UPSTREAM_DEFAULTS = {
  multi_shot: false,
  sound: 'off',
  cfg_scale: 0.5,
  mode: 'std',
  duration: '5',
} as const;

const IMAGE_RULES = 'an http(s) URL or bare base64 without a "data:" prefix; JPEG or PNG, at most 10 MB, width and height at least 300 px';

const image = (check: (value: string) => string | null, description: string) =>
  z
    .string({ error: expecting('a string') })
    .superRefine(rule(check))
    .optional()
    .describe(description);

// Kling's table marks mask and trajectories optional, but a motion brush is the pair: both are required.
// Points are integers; Kling documents no range for them.
const dynamicMask = z
  .object(
    {
      mask: z
        .string({ error: expecting('a string') })
        .superRefine(rule(checkImage))
        .describe(`Area to move: a mask image with the aspect ratio of image (${IMAGE_RULES})`),
      trajectories: z
        .array(
          z
            .object(
              {
                x: z.int({ error: expecting('an integer') }).describe('Pixels from the left edge of image'),
                y: z.int({ error: expecting('an integer') }).describe('Pixels from the bottom edge of image'),
              },
              { error: expecting('an object like {"x": 10, "y": 20}') },
            )
            .strict(),
          { error: expecting('an array') },
        )
        .min(2, 'must have at least 2 points')
        .describe('Motion path, followed in order: 2 to 77 points for a 5 s video, origin at the bottom-left corner of image'),
    },
    { error: expecting('an object like {"mask": "...", "trajectories": [{"x": 0, "y": 0}, {"x": 10, "y": 10}]}') },
  )
  .strict();

function buildShape(models: readonly string[]) {
  return {
    model_name: modelNameField(models),
    image: image(
      checkImage,
      `First frame (required: image_tail alone is not supported): ${IMAGE_RULES}, aspect ratio between 1:2.5 and 2.5:1`,
    ),
    image_tail: image(
      (value) => checkImage(value, { aspectRatio: false }),
      `Last frame: ${IMAGE_RULES}. Not with static_mask, dynamic_masks, camera_control or multi_shot`,
    ),
    prompt: promptField('Positive text prompt (at most 2500 characters); required with multi_shot and shot_type intelligence'),
    negative_prompt: negativePromptField,
    ...multiShotFields,
    voice_list: z
      .array(
        z
          .object(
            {
              voice_id: z
                .string({ error: expecting('a string') })
                .min(1, 'must not be empty')
                .describe('ID of a voice'),
            },
            { error: expecting('an object like {"voice_id": "..."}') },
          )
          .strict(),
        { error: expecting('an array') },
      )
      .max(2, 'must have at most 2 voices')
      .optional()
      .describe(
        'Voices the prompt refers to as <<<voice_1>>>, <<<voice_2>>>: at most 2, Kling V2.6 and later, needs sound "on"; not with element_list',
      ),
    element_list: z
      .array(elementReference, { error: expecting('an array') })
      .max(3, 'must have at most 3 elements')
      .optional()
      .describe('Element references from the element library: at most 3; not with voice_list'),
    sound: soundField,
    cfg_scale: cfgScaleField,
    mode: modeField,
    static_mask: image(checkImage, `Area that stays still: a mask image with the aspect ratio of image (${IMAGE_RULES})`),
    dynamic_masks: z
      .array(dynamicMask, { error: expecting('an array') })
      .max(6, 'must have at most 6 masks')
      .optional()
      .describe('Motion brush: up to 6 areas, each with its motion path. Not with image_tail or camera_control'),
    camera_control: cameraControlField,
    // Kling's image2video reference has no aspect_ratio (the video follows the image); whether the
    // upstream ignores or refuses it is not documented, and clients written for Kling send it, so
    // it is accepted and forwarded.
    aspect_ratio: aspectRatioField("Aspect ratio (width:height); not on Kling's image2video reference, where the video follows the image"),
    duration: durationField,
    watermark_info: watermarkInfoField,
    callback_url: callbackUrlField,
    external_task_id: externalTaskIdField,
  };
}

type Shape = z.output<z.ZodObject<ReturnType<typeof buildShape>>>;

// Rules spanning fields, in field order. zod runs this only once every field has the right type.
function checkCrossFieldRules(value: Shape, ctx: z.RefinementCtx): void {
  checkImageToVideoRules(value, ctx);
  // Kling cuts an "intelligence" multi-shot video from the prompt.
  if (value.multi_shot === true && value.shot_type === 'intelligence')
    requirePrompt(value.prompt, ctx, ' when shot_type is "intelligence"');
  checkMultiShotRules(value, ctx);
  checkModelRules(value, ctx);
}

/** Schema of the image2video create body; `models` is the configured video allow-list, the first one is the default. */
export function buildImageToVideoRequest(models: readonly string[]) {
  if (models.length === 0) throw new Error('buildImageToVideoRequest: at least one model name must be configured');
  return z
    .object(buildShape(models), { error: expecting('a JSON object') })
    .strict()
    .superRefine(checkCrossFieldRules)
    .describe('Kling image-to-video request (POST /v1/videos/image2video)');
}

export type ImageToVideoRequest = z.output<ReturnType<typeof buildImageToVideoRequest>>;

const schemaFor = memoiseByModels(buildImageToVideoRequest);

/** Validates an image2video create body: the request as it will be stored, or the first problem. Never throws for any body. */
export function validateImageToVideoRequest(body: unknown, models: readonly string[]): Validation<ImageToVideoRequest> {
  return validateBody(schemaFor(models), body);
}
