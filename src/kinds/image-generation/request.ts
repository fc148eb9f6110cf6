import { z } from 'zod';
import type { Validation } from '../kind';
import {
  callbackUrlField,
  checkImage,
  elementReference,
  expecting,
  externalTaskIdField,
  MAX_PROMPT_CHARS,
  modelNameField,
  rule,
  watermarkInfoField,
} from '../shared/fields';
import { memoiseByModels, validateBody } from '../shared/validate-body';

// The body of POST /v1/images/generations, exactly as Kling accepts it. Only what the client sent
// is forwarded: defaults other than model_name are left to the upstream.
export type ImageGenerationRequest = {
  model_name: string;
  prompt: string;
  negative_prompt?: string;
  image?: string;
  image_reference?: 'subject' | 'face';
  image_fidelity?: number;
  human_fidelity?: number;
  element_list?: { element_id: number }[];
  resolution?: '1k' | '2k';
  n?: number;
  aspect_ratio?: '1:1' | '16:9' | '4:3' | '3:2' | '2:3' | '3:4' | '9:16' | '21:9';
  watermark_info?: { enabled: boolean };
  callback_url?: string;
  external_task_id?: string;
};

export type ValidationResult = Validation<ImageGenerationRequest>;

const MAX_REFERENCES = 10;

const fidelity = (description: string) =>
  z
    .number({ error: expecting('a number') })
    .min(0, 'must be between 0 and 1')
    .max(1, 'must be between 0 and 1')
    .describe(description);

function buildShape(models: readonly string[]) {
  return {
    model_name: modelNameField(models),
    prompt: z
      .string({ error: expecting('a string') })
      .refine((value) => value.trim() !== '', 'must not be blank')
      .max(MAX_PROMPT_CHARS, `must be at most ${MAX_PROMPT_CHARS} characters`)
      .describe('Positive text prompt (at most 2500 characters)'),
    negative_prompt: z
      .string({ error: expecting('a string') })
      .max(MAX_PROMPT_CHARS, `must be at most ${MAX_PROMPT_CHARS} characters`)
      .optional()
      .describe('Negative text prompt (at most 2500 characters); not supported together with image (image-to-image)'),
    image: z
      .string({ error: expecting('a string') })
      .superRefine(rule(checkImage))
      .optional()
      .describe(
        'Reference image: an http(s) URL or bare base64 without a "data:" prefix. JPEG or PNG, at most 10 MB, ' +
          'width and height at least 300 px, aspect ratio between 1:2.5 and 2.5:1. Required when image_reference is set',
      ),
    image_reference: z
      .enum(['subject', 'face'], { error: expecting('"subject" or "face"') })
      .optional()
      .describe(
        'Image reference type: subject (character features) or face (facial appearance; the image must contain exactly one face). Requires image',
      ),
    image_fidelity: fidelity('Reference strength of the uploaded image, 0 to 1 (upstream default 0.8)').optional(),
    human_fidelity: fidelity('Facial reference strength (similarity to the reference face), 0 to 1 (upstream default 0.8)').optional(),
    element_list: z
      .array(elementReference, { error: expecting('an array') })
      .max(MAX_REFERENCES, `must have at most ${MAX_REFERENCES} elements`)
      .optional()
      .describe('Element references from the element library; elements plus reference images must be at most 10'),
    resolution: z
      .enum(['1k', '2k'], { error: expecting('"1k" or "2k"') })
      .optional()
      .describe('Generated image resolution (upstream default 1k)'),
    n: z
      .int({ error: expecting('an integer') })
      .min(1, 'must be between 1 and 9')
      .max(9, 'must be between 1 and 9')
      .optional()
      .describe('Number of images to generate, 1 to 9 (upstream default 1)'),
    aspect_ratio: z
      .enum(['1:1', '16:9', '4:3', '3:2', '2:3', '3:4', '9:16', '21:9'], {
        error: expecting('one of 1:1, 16:9, 4:3, 3:2, 2:3, 3:4, 9:16, 21:9'),
      })
      .optional()
      .describe('Aspect ratio (width:height) of generated images (upstream default 16:9)'),
    watermark_info: watermarkInfoField,
    callback_url: callbackUrlField,
    external_task_id: externalTaskIdField,
  };
}

type ParsedShape = { negative_prompt?: string; image?: string; image_reference?: string; element_list?: unknown[] };

// Rules spanning fields. zod runs this only once every field has the right type.
function checkCrossFieldRules(value: ParsedShape, ctx: z.RefinementCtx): void {
  const hasImage = value.image !== undefined;
  if (value.negative_prompt !== undefined && hasImage) {
    ctx.addIssue({ code: 'custom', path: ['negative_prompt'], message: 'is not supported together with image (image-to-image)' });
  }
  if (value.image_reference !== undefined && !hasImage) {
    ctx.addIssue({ code: 'custom', path: ['image_reference'], message: 'requires image' });
  }
  const elements = value.element_list?.length ?? 0;
  if (elements + (hasImage ? 1 : 0) > MAX_REFERENCES) {
    ctx.addIssue({
      code: 'custom',
      path: ['element_list'],
      message: `elements plus reference images must be at most ${MAX_REFERENCES} (got ${elements} elements and ${hasImage ? 1 : 0} image)`,
    });
  }
}

/**
 * Kling's documented defaults for fields a client may leave out. Not sent upstream (the upstream
 * applies them itself); used where two requests must compare equal whether a default was spelled
 * out or not (the Idempotency-Key's request hash).
 */
export const IMAGE_GENERATION_UPSTREAM_DEFAULTS = {
  n: 1,
  resolution: '1k',
  aspect_ratio: '16:9',
  image_fidelity: 0.8,
  human_fidelity: 0.8,
} as const;

/** Schema of the create-task body; `models` is the configured allow-list, the first one is the default. */
export function buildImageGenerationRequest(models: readonly string[]): z.ZodType<ImageGenerationRequest> {
  if (models.length === 0) throw new Error('buildImageGenerationRequest: at least one model name must be configured');
  return z
    .object(buildShape(models), { error: expecting('a JSON object') })
    .strict()
    .superRefine(checkCrossFieldRules)
    .describe('Kling image generation request (POST /v1/images/generations)');
}

const schemaFor = memoiseByModels(buildImageGenerationRequest);

/** Validates an image generation body; never throws for any body. */
export function validateImageGenerationRequest(body: unknown, models: readonly string[]): ValidationResult {
  return validateBody(schemaFor(models), body);
}
