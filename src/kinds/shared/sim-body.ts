import type { z } from 'zod';

/** What a kind's simulator makes of a create body: the parsed fields, or Kling's 1201 message. */
export type SimBodyCheck<T> = { ok: true; value: T } | { ok: false; message: string };

/** Parses a body with a kind's upstream rules; the message names the first offending field. */
export function checkSimBody<T>(schema: z.ZodType<T>, body: Record<string, unknown>): SimBodyCheck<T> {
  const result = schema.safeParse(body);
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0];
  return { ok: false, message: `${issue.path.join('.') || 'body'}: ${issue.message}` };
}

/** The model a task runs on: the one asked for if the account offers it, else the first offered. */
export function pickSimModel(requested: string | null | undefined, models: readonly string[]): SimBodyCheck<string> {
  const modelName = requested ?? models[0];
  if (!models.includes(modelName)) return { ok: false, message: `model_name: unsupported model ${JSON.stringify(modelName)}` };
  return { ok: true, value: modelName };
}
