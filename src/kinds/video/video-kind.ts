import type { KindId, KindRequest, SimulatedKind, TaskKind, Validation } from '../kind';
import type { z } from 'zod';
import { readVideos, UpstreamVideos, VideosResult } from './result';

/** What tells one video kind from another; the rest (pool, slots, results, limits) they share. */
export interface VideoKindParts {
  id: KindId;
  path: string;
  title: string;
  example: Record<string, unknown>;
  requestSchema(models: readonly string[]): z.ZodType<KindRequest>;
  validate(body: unknown, models: readonly string[]): Validation<KindRequest>;
  upstreamDefaults: Readonly<Record<string, unknown>>;
  simulator: SimulatedKind;
}

/** A video kind: one video slot per task (Kling's video pack), `task_result.videos`, limits for minutes-long work. */
export function videoKind(parts: VideoKindParts): TaskKind {
  return {
    ...parts,
    pool: 'video',
    models: 'video',
    slotCost: () => 1,
    upstreamResult: UpstreamVideos,
    readResult: (upstream) => readVideos(upstream as z.infer<typeof UpstreamVideos>),
    taskResult: (stored) => ({ videos: (stored as { videos?: unknown[] } | null)?.videos ?? [] }),
    outputs: { list: 'videos', kind: 'video' },
    taskResultSchema: VideosResult,
    trackerFields: () => ({}),
    // Videos take minutes upstream, and Kling's own queue can add more: limits in hours, not minutes.
    stageLimits: { queueMs: 3_600_000, startMs: 3_600_000, totalMs: 21_600_000 },
  };
}
