/**
 * A Kling task kind: everything that differs between kinds of task sharing one lifecycle
 * (create -> task_id -> query/callback -> submitted, processing, succeed | failed). The core knows
 * kinds only through this interface; each kind lives in its own folder and is listed once in
 * `registry.ts`.
 */

import type { z } from 'zod';

/** Stored in `tasks.kind`; also the metrics label (`image-generation`, `text-to-video`, ...). */
export type KindId = string;

/** Kling counts concurrency per resource-pack type; each kind holds slots in one pool. */
export type SlotPool = 'image' | 'video';

/** What validating a create body gives: the request as it will be stored, or the first problem (400/1201). */
export type Validation<T> = { ok: true; value: T } | { ok: false; field: string; message: string };

/** A create body once validated: the fields every kind has, and its own. */
export interface KindRequest {
  model_name: string;
  /** The client's webhook URL: ours to honour, never sent upstream. */
  callback_url?: string;
  /** The client's own id: ours to honour, never sent upstream. */
  external_task_id?: string;
  [field: string]: unknown;
}

/** A kind's `task_result` as clients see it (`{images: [...]}`, `{videos: [...]}`); stored as is. */
export type TaskResult = Record<string, unknown>;

/** How long a task of the kind may wait in our queue, wait for the upstream to start it, and take in all. */
export interface StageLimits {
  queueMs: number;
  startMs: number;
  totalMs: number;
}

/**
 * Where a kind's outputs are in its `task_result`: the list (`images`, `videos`) whose entries each
 * carry a file `url`, and what those files are (durable copies check their bytes against it).
 */
export interface OutputShape {
  list: 'images' | 'videos';
  kind: 'image' | 'video';
}

/** Which configured model list a kind takes: KLING_MODELS or KLING_VIDEO_MODELS. */
export type ModelFamily = 'image' | 'video';

export interface TaskKind {
  id: KindId;
  /** Kling's path for the kind: this service's route and the upstream's, below their base URLs. */
  path: string;
  /** How people call it (docs, logs). */
  title: string;
  /** A request body as the API reference shows it. */
  example: Record<string, unknown>;
  pool: SlotPool;
  models: ModelFamily;
  /** The create body's schema for the configured models: it validates and feeds the OpenAPI document. */
  requestSchema(models: readonly string[]): z.ZodType<KindRequest>;
  /** Validates a create body: the request as it will be stored, or its first problem. Never throws. */
  validate(body: unknown, models: readonly string[]): Validation<KindRequest>;
  /**
   * Kling's documented defaults of the fields a client may leave out. Never sent (the upstream
   * applies them); two requests that differ only by spelling a default out are the same request.
   */
  upstreamDefaults: Readonly<Record<string, unknown>>;
  /** Slots a task holds in its pool from submission until it ends, as Kling counts them. */
  slotCost(request: KindRequest): number;
  /** Kling's `task_result` of this kind as the upstream sends it (lenient); a callback whose result does not fit is refused. */
  upstreamResult: z.ZodType<Record<string, unknown>>;
  /** What is stored and shown as `task_result`, from the upstream's (as upstreamResult parsed it); null while it has nothing. */
  readResult(upstreamResult: Record<string, unknown>): TaskResult | null;
  /** `task_result` shown for a stored result; null: none yet (`{images: []}` for images). */
  taskResult(stored: unknown): TaskResult;
  /** Where the output files are in `task_result` (they are copied, and shown as this service's links). */
  outputs: OutputShape;
  /** The zod schema of `task_result` (OpenAPI). */
  taskResultSchema: z.ZodType;
  /** Fields of this kind under the `tracker` extension, from the slots the task holds (e.g. images' `n`). */
  trackerFields(task: { slotCost: number }): Record<string, unknown>;
  /** Default stage limits; QUEUE/START/TOTAL_TIMEOUT_MS, and their per-kind forms, override them. */
  stageLimits: StageLimits;
  /** How the built-in simulator plays the upstream for this kind. */
  simulator: SimulatedKind;
}

/** The parameters the simulator keeps for a task it accepted (results depend on them). */
export interface SimParams {
  modelName: string;
  /** Slots the task holds in its pool, as the upstream counts them. */
  slots: number;
  callbackUrl?: string;
  externalTaskId?: string;
  /** Whatever else the kind's results depend on (aspect ratio, duration, ...). */
  [key: string]: unknown;
}

/** A file the simulator serves as a result (a PNG, an MP4). */
export interface SimFile {
  contentType: string;
  body: Buffer;
}

/**
 * How the built-in simulator plays the upstream for one kind: its own reading of Kling's rules for
 * the create body (it is the outside world, so it does not reuse this service's validation), the
 * task_result of a task that succeeded, and the result files behind its URLs.
 */
export interface SimulatedKind {
  /** Checks a create body as the upstream would (unknown fields pass, as upstream). */
  parse(body: Record<string, unknown>, models: readonly string[]): { ok: true; params: SimParams } | { ok: false; message: string };
  /** `task_result` of a succeeded task; file URLs are `${fileBase}/<name>`. */
  result(task: { taskId: string; params: SimParams; fileBase: string }): Record<string, unknown>;
  /** The result file `name` of a succeeded task, or undefined when there is no such file. */
  file(task: { taskId: string; params: SimParams }, name: string): SimFile | undefined;
}
