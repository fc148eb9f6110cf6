import { z } from 'zod';
import { klingErrors } from './sim-error';

export const ASPECT_RATIOS = ['1:1', '16:9', '4:3', '3:2', '2:3', '3:4', '9:16', '21:9'] as const;
export type AspectRatio = (typeof ASPECT_RATIOS)[number];
export const RESOLUTIONS = ['1k', '2k'] as const;
export type Resolution = (typeof RESOLUTIONS)[number];

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

export interface CreateParams {
  modelName: string;
  n: number;
  aspectRatio: AspectRatio;
  resolution: Resolution;
  callbackUrl?: string;
  externalTaskId?: string;
}

/** Parses a raw request body into a JSON object, answering 1200 as Kling does otherwise. */
export function parseJsonObject(raw: unknown): Record<string, unknown> {
  if (typeof raw !== 'string' || raw.trim() === '') throw klingErrors.invalidRequest('empty body');
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw klingErrors.invalidRequest('body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw klingErrors.invalidRequest('body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

export function parseCreateParams(body: Record<string, unknown>, models: string[]): CreateParams {
  const result = SimCreateRequest.safeParse(body);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw klingErrors.invalidParam(`${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  const req = result.data;
  const modelName = req.model_name ?? models[0];
  if (!models.includes(modelName)) {
    throw klingErrors.invalidParam(`model_name: unsupported model ${JSON.stringify(modelName)}`);
  }
  return {
    modelName,
    n: req.n ?? 1,
    aspectRatio: req.aspect_ratio ?? '16:9',
    resolution: req.resolution ?? '1k',
    callbackUrl: req.callback_url || undefined,
    externalTaskId: req.external_task_id || undefined,
  };
}

export interface Paging {
  pageNum: number;
  pageSize: number;
}

export function parsePaging(query: Record<string, unknown>): Paging {
  return {
    pageNum: intParam(query, 'pageNum', 1, 1000, 1),
    pageSize: intParam(query, 'pageSize', 1, 500, 30),
  };
}

function intParam(query: Record<string, unknown>, name: string, min: number, max: number, fallback: number): number {
  const value = query[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !/^\d+$/.test(value)) {
    throw klingErrors.invalidParam(`${name}: must be an integer`);
  }
  const parsed = Number(value);
  if (parsed < min || parsed > max) {
    throw klingErrors.invalidParam(`${name}: must be between ${min} and ${max}`);
  }
  return parsed;
}
