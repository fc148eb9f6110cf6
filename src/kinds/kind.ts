/**
 * A Kling task kind: everything that differs between kinds of task sharing one lifecycle
 * (create -> task_id -> query/callback -> submitted, processing, succeed | failed). The core knows
 * kinds only through this interface; each kind lives in its own folder and is listed once in
 * `registry.ts`.
 */

/** Stored in `tasks.kind`; also the metrics label. */
export type KindId = 'image-generation' | 'text-to-video' | 'image-to-video';

/** Kling counts concurrency per resource-pack type; each kind holds slots in one pool. */
export type SlotPool = 'image' | 'video';

/** What validating a create body gives: the request as it will be stored, or the first problem (400/1201). */
export type Validation<T> = { ok: true; value: T } | { ok: false; field: string; message: string };

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
