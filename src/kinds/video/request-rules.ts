import { z } from 'zod';
import { expecting, MAX_PROMPT_CHARS } from '../shared/fields';

// The create-body fields text2video and image2video share, as Kling's API reference documents them.

const MAX_SHOTS = 6;
const MAX_SHOT_PROMPT_CHARS = 512;
/** What Kling runs when `duration` is left out. */
const DEFAULT_DURATION = '5';
const DURATIONS = ['3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14', '15'] as const;
const CAMERA_TYPES = ['simple', 'down_back', 'forward_up', 'right_turn_forward', 'left_turn_forward'] as const;
const CAMERA_AXES = ['horizontal', 'vertical', 'pan', 'tilt', 'roll', 'zoom'] as const;

const notBlank = (value: string) => value.trim() !== '';

export const promptField = (description: string) =>
  z
    .string({ error: expecting('a string') })
    .max(MAX_PROMPT_CHARS, `must be at most ${MAX_PROMPT_CHARS} characters`)
    .optional()
    .describe(description);

export const negativePromptField = z
  .string({ error: expecting('a string') })
  .max(MAX_PROMPT_CHARS, `must be at most ${MAX_PROMPT_CHARS} characters`)
  .optional()
  .describe('Negative text prompt (at most 2500 characters)');

// Kling: "kling-v2.x models do not support" cfg_scale; whether they ignore or refuse it is not
// documented, and widely used clients send it to them, so it is accepted for every model.
export const cfgScaleField = z
  .number({ error: expecting('a number') })
  .min(0, 'must be between 0 and 1')
  .max(1, 'must be between 0 and 1')
  .optional()
  .describe('Flexibility, 0 to 1: higher follows the prompt more closely (upstream default 0.5; Kling v2.x models do not use it)');

export const modeField = z
  .enum(['std', 'pro', '4k'], { error: expecting('"std", "pro" or "4k"') })
  .optional()
  .describe(
    'Generation mode: std (cost-effective), pro (higher quality) or 4k (Kling 3.0 models only; there std is 720p, pro 1080p); upstream default std',
  );

export const soundField = z
  .enum(['on', 'off'], { error: expecting('"on" or "off"') })
  .optional()
  .describe('Generate audio with the video: Kling V2.6 and later (kling-v2-6 in pro mode only); upstream default off');

export const aspectRatioField = (description: string) =>
  z
    .enum(['16:9', '9:16', '1:1'], { error: expecting('one of 16:9, 9:16, 1:1') })
    .optional()
    .describe(description);

export const durationField = z
  .enum(DURATIONS, { error: expecting('a string of whole seconds: "5" or "10", or "3" to "15" on Kling 3.0 models') })
  .optional()
  .describe('Video length in seconds, as a string: "5" or "10"; "3" to "15" on Kling 3.0 models (upstream default "5")');

const cameraAxis = (description: string) =>
  z
    .number({ error: expecting('a number') })
    .min(-10, 'must be between -10 and 10')
    .max(10, 'must be between -10 and 10')
    .optional()
    .describe(`${description}, -10 to 10`);

const cameraConfig = z
  .object(
    {
      horizontal: cameraAxis('Translation along the x-axis: negative left, positive right'),
      vertical: cameraAxis('Translation along the y-axis: negative down, positive up'),
      pan: cameraAxis("Rotation (Kling's English and Chinese references disagree on its axis and sign)"),
      tilt: cameraAxis("Rotation (Kling's English and Chinese references disagree on its axis and sign)"),
      roll: cameraAxis('Rotation around the z-axis: negative counter-clockwise, positive clockwise'),
      zoom: cameraAxis('Focal length: negative narrows the view, positive widens it'),
    },
    { error: expecting('an object like {"zoom": 5}') },
  )
  .strict();

type CameraControl = { type: (typeof CAMERA_TYPES)[number]; config?: z.infer<typeof cameraConfig> | null };

function checkCameraControl(value: CameraControl, ctx: z.RefinementCtx): void {
  const config = value.config;
  if (value.type !== 'simple') {
    // Kling: for the preset types the config "must be set to None" (null or left out).
    if (config != null) ctx.addIssue({ code: 'custom', path: ['config'], message: `must be left out for type "${value.type}"` });
    return;
  }
  if (config == null) {
    ctx.addIssue({ code: 'custom', path: ['config'], message: 'is required for type "simple"' });
    return;
  }
  const moving = CAMERA_AXES.filter((axis) => (config[axis] ?? 0) !== 0);
  if (moving.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      path: ['config'],
      message: `must have exactly one of ${CAMERA_AXES.join(', ')} non-zero for type "simple" (got ${moving.length === 0 ? 'none' : moving.join(', ')})`,
    });
  }
}

// Which models take camera control is Kling's capability map, which changes with each release and
// is not confirmed for current models: the upstream judges it.
export const cameraControlField = z
  .object(
    {
      // Kling's table marks type optional, but what config must be depends on it: it is required here.
      type: z
        .enum(CAMERA_TYPES, { error: expecting(`one of ${CAMERA_TYPES.join(', ')}`) })
        .describe('simple (one movement, given in config) or a preset movement'),
      config: cameraConfig
        .nullable()
        .optional()
        .describe(
          'Required for type simple: exactly one of the six movements non-zero (the others zero or left out); null or left out for the presets',
        ),
    },
    { error: expecting('an object like {"type": "simple", "config": {"zoom": 5}}') },
  )
  .strict()
  .superRefine(checkCameraControl)
  .optional()
  .describe('Camera movement; when left out the model chooses one from the prompt');

const shot = z
  .object(
    {
      index: z.int({ error: expecting('an integer') }).describe('Shot number'),
      prompt: z
        .string({ error: expecting('a string') })
        .refine(notBlank, 'must not be blank')
        .max(MAX_SHOT_PROMPT_CHARS, `must be at most ${MAX_SHOT_PROMPT_CHARS} characters`)
        .describe('What happens in this shot (at most 512 characters)'),
      duration: z
        .string({ error: expecting('a string') })
        .regex(/^[1-9][0-9]?$/, 'must be whole seconds as a string, at least "1"')
        .describe('Length of this shot in seconds, as a string; the shots add up to the task duration'),
    },
    { error: expecting('an object like {"index": 1, "prompt": "...", "duration": "5"}') },
  )
  .strict();

export const multiShotFields = {
  multi_shot: z
    .boolean({ error: expecting('a boolean') })
    .optional()
    .describe('Generate a video of several shots (Kling 3.0 models); upstream default false'),
  shot_type: z
    .enum(['customize', 'intelligence'], { error: expecting('"customize" or "intelligence"') })
    .optional()
    .describe('With multi_shot: customize (multi_prompt gives the shots) or intelligence (the model cuts the prompt into shots)'),
  multi_prompt: z
    .array(shot, { error: expecting('an array') })
    .min(1, `must have 1 to ${MAX_SHOTS} shots`)
    .max(MAX_SHOTS, `must have 1 to ${MAX_SHOTS} shots`)
    .optional()
    .describe('With shot_type customize: 1 to 6 shots, each at least 1 s, adding up to the task duration'),
};

/** `duration` as Kling runs it. */
export const taskDuration = (value: { duration?: string }): string => value.duration ?? DEFAULT_DURATION;

type MultiShotFields = { multi_shot?: boolean; shot_type?: string; multi_prompt?: { duration: string }[]; duration?: string };

/** True when Kling takes the shots from multi_prompt and ignores prompt. */
export const isCustomMultiShot = (value: MultiShotFields): boolean => value.multi_shot === true && value.shot_type === 'customize';

/** A prompt that must be present and not blank; `why` says when, for the message. */
export function requirePrompt(prompt: string | undefined, ctx: z.RefinementCtx, why = ''): void {
  if (prompt === undefined) ctx.addIssue({ code: 'custom', path: ['prompt'], message: `is required${why}` });
  else if (!notBlank(prompt)) ctx.addIssue({ code: 'custom', path: ['prompt'], message: `must not be blank${why}` });
}

/** Kling: shot_type and multi_prompt are "invalid" without multi_shot; with it, the shots fill the task duration. */
export function checkMultiShotRules(value: MultiShotFields, ctx: z.RefinementCtx): void {
  if (value.multi_shot !== true) {
    if (value.shot_type !== undefined)
      ctx.addIssue({ code: 'custom', path: ['shot_type'], message: 'needs multi_shot: true (Kling ignores it otherwise)' });
    if (value.multi_prompt !== undefined)
      ctx.addIssue({ code: 'custom', path: ['multi_prompt'], message: 'needs multi_shot: true (Kling ignores it otherwise)' });
    return;
  }
  if (value.shot_type === undefined) ctx.addIssue({ code: 'custom', path: ['shot_type'], message: 'is required when multi_shot is true' });
  if (value.shot_type === 'customize' && value.multi_prompt === undefined) {
    ctx.addIssue({ code: 'custom', path: ['multi_prompt'], message: 'is required when shot_type is "customize"' });
  }
  if (value.multi_prompt === undefined) return;
  const total = Number(taskDuration(value));
  value.multi_prompt.forEach((item, i) => {
    if (Number(item.duration) > total) {
      ctx.addIssue({ code: 'custom', path: ['multi_prompt', i, 'duration'], message: `must be at most the task duration (${total} s)` });
    }
  });
  const sum = value.multi_prompt.reduce((acc, item) => acc + Number(item.duration), 0);
  if (sum !== total) {
    ctx.addIssue({
      code: 'custom',
      path: ['multi_prompt'],
      message: `shot durations must add up to the task duration (${total} s; they add up to ${sum} s)`,
    });
  }
}
