import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { SimParams, SimulatedKind } from '../kind';
import { checkSimBody, pickSimModel } from '../shared/sim-body';

// Kling 3.0 models take any whole number of seconds from 3 to 15 (older ones only 5 and 10, which
// the simulator does not tell apart); there is one committed clip per duration and aspect ratio.
export const SIM_VIDEO_DURATIONS = Array.from({ length: 13 }, (_, i) => String(i + 3)) as [string, ...string[]];
export const VIDEO_ASPECT_RATIOS = ['16:9', '9:16', '1:1'] as const;
export type VideoAspectRatio = (typeof VIDEO_ASPECT_RATIOS)[number];

const CAMERA_TYPES = ['simple', 'down_back', 'forward_up', 'right_turn_forward', 'left_turn_forward'] as const;

/**
 * Fields both video kinds share, as the simulator reads Kling's rules: types and the enums that
 * decide the result. Unknown fields pass and null means absent, as upstream.
 */
export const simVideoFields = {
  model_name: z.string().nullish(),
  negative_prompt: z.string().max(2500).nullish(),
  cfg_scale: z.number().min(0).max(1).nullish(),
  mode: z.enum(['std', 'pro', '4k']).nullish(),
  duration: z.enum(SIM_VIDEO_DURATIONS).nullish(),
  sound: z.enum(['on', 'off']).nullish(),
  camera_control: z.object({ type: z.enum(CAMERA_TYPES), config: z.record(z.string(), z.number()).nullish() }).nullish(),
  watermark_info: z.object({ enabled: z.boolean() }).nullish(),
  callback_url: z.string().nullish(),
  external_task_id: z.string().nullish(),
};

type SimVideoBody = { [K in keyof typeof simVideoFields]?: z.infer<(typeof simVideoFields)[K]> };

interface VideoParams extends SimParams {
  duration: string;
  aspectRatio: VideoAspectRatio;
}

/**
 * A video kind for the simulator: `schema` and `check` are the kind's own rules; every video task
 * holds one video slot and succeeds with one real MP4 of the asked duration.
 */
export function simulatedVideoKind<T extends SimVideoBody>(spec: {
  schema: z.ZodType<T>;
  /** A rule across fields that a schema does not say; returns the 1201 message. */
  check?: (body: T) => string | undefined;
  aspectRatio: (body: T) => VideoAspectRatio;
}): SimulatedKind {
  return {
    parse(body, models) {
      const checked = checkSimBody(spec.schema, body);
      if (!checked.ok) return checked;
      const problem = spec.check?.(checked.value);
      if (problem) return { ok: false, message: problem };
      const model = pickSimModel(checked.value.model_name, models);
      if (!model.ok) return model;
      const req = checked.value;
      const params: VideoParams = {
        modelName: model.value,
        slots: 1,
        duration: req.duration ?? '5',
        aspectRatio: spec.aspectRatio(req),
        callbackUrl: req.callback_url || undefined,
        externalTaskId: req.external_task_id || undefined,
      };
      return { ok: true, params };
    },
    result({ taskId, params, fileBase }) {
      const { duration } = params as VideoParams;
      return { videos: [{ id: videoId(taskId), url: `${fileBase}/0.mp4`, duration }] };
    },
    file({ params }, name) {
      if (name !== '0.mp4') return undefined;
      const { duration, aspectRatio } = params as VideoParams;
      return { contentType: 'video/mp4', body: videoClip(aspectRatio, duration) };
    },
  };
}

// Kling's video ids are UUIDs; deriving ours from the task id keeps repeated reads identical.
function videoId(taskId: string): string {
  const hex = createHash('sha256').update(`video/${taskId}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

const clips = new Map<string, Buffer>();

/** The committed clip (scripts/make-sim-videos.sh) whose real length is `duration` seconds. */
function videoClip(aspectRatio: VideoAspectRatio, duration: string): Buffer {
  const name = `${aspectRatio.replace(':', 'x')}-${duration}s.mp4`;
  let clip = clips.get(name);
  if (!clip) {
    clip = readFileSync(path.join(__dirname, 'assets', name));
    clips.set(name, clip);
  }
  return clip;
}
