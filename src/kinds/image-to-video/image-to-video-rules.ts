import type { z } from 'zod';
import { tailFrameProblem, voiceListProblem } from '../video/models';
import { taskDuration } from '../video/request-rules';

// image2video's rules spanning fields, as Kling's API reference states them.

/** Kling: a 5 s video's motion path has at most 77 points; no bound is documented for other lengths. */
const MAX_TRAJECTORY_POINTS_5S = 77;

type ImageToVideoFields = {
  model_name: string;
  image?: string;
  image_tail?: string;
  multi_shot?: boolean;
  voice_list?: unknown[];
  element_list?: unknown[];
  sound?: string;
  mode?: string;
  static_mask?: string;
  dynamic_masks?: { trajectories: unknown[] }[];
  camera_control?: unknown;
  duration?: string;
};

function issue(ctx: z.RefinementCtx, path: (string | number)[], message: string): void {
  ctx.addIssue({ code: 'custom', path, message });
}

function checkFrames(value: ImageToVideoFields, ctx: z.RefinementCtx): void {
  // Kling wants at least one of image and image_tail, and no current model takes image_tail alone.
  if (value.image === undefined) {
    if (value.image_tail === undefined) issue(ctx, ['image'], 'is required (image_tail alone is not supported)');
    else issue(ctx, ['image_tail'], 'needs image: a last frame alone is not supported');
    return;
  }
  if (value.image_tail === undefined) return;
  if (value.multi_shot === true) issue(ctx, ['image_tail'], 'is not supported with multi_shot: true');
  const problem = tailFrameProblem(value);
  if (problem !== null) issue(ctx, ['image_tail'], problem);
}

// Kling: "image+image_tail, dynamic_masks/static_mask, and camera_control cannot be used at the
// same time". An empty dynamic_masks list asks for no motion brush, so it does not count.
function checkExclusiveControls(value: ImageToVideoFields, ctx: z.RefinementCtx): void {
  const masks = value.static_mask !== undefined ? 'static_mask' : value.dynamic_masks?.length ? 'dynamic_masks' : undefined;
  const used = [
    value.image_tail !== undefined ? 'image_tail' : undefined,
    masks,
    value.camera_control !== undefined ? 'camera_control' : undefined,
  ];
  const [first, second] = used.filter((field) => field !== undefined);
  if (second !== undefined) {
    issue(
      ctx,
      [second],
      `cannot be combined with ${first}: image_tail, static_mask/dynamic_masks and camera_control are mutually exclusive`,
    );
  }
}

// An empty voice_list names no voice, so the rules about voices apply to a non-empty one.
function checkVoices(value: ImageToVideoFields, ctx: z.RefinementCtx): void {
  if (!value.voice_list?.length) return;
  const problem = voiceListProblem(value.model_name);
  if (problem !== null) issue(ctx, ['voice_list'], problem);
  if (value.sound !== 'on') issue(ctx, ['voice_list'], 'needs sound "on"');
  if (value.element_list?.length) issue(ctx, ['element_list'], 'cannot be combined with voice_list');
}

function checkTrajectories(value: ImageToVideoFields, ctx: z.RefinementCtx): void {
  if (taskDuration(value) !== '5') return;
  value.dynamic_masks?.forEach((mask, i) => {
    if (mask.trajectories.length > MAX_TRAJECTORY_POINTS_5S) {
      issue(ctx, ['dynamic_masks', i, 'trajectories'], `must have at most ${MAX_TRAJECTORY_POINTS_5S} points for a 5 s video`);
    }
  });
}

/** Issues for image2video's own rules spanning fields, in field order. */
export function checkImageToVideoRules(value: ImageToVideoFields, ctx: z.RefinementCtx): void {
  checkFrames(value, ctx);
  checkVoices(value, ctx);
  checkExclusiveControls(value, ctx);
  checkTrajectories(value, ctx);
}
