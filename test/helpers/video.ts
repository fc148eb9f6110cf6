import request from 'supertest';
import type { SimTask, SimTaskStatus } from '../../src/simulator/kling-simulator';
import type { Task } from '../../src/db/client';
import { bearer } from './fixtures';
import type { Harness } from './harness';
import { eventually } from './invariants';

/** A first frame by URL: the service checks its form only, and the simulator does not fetch it. */
export const FRAME_URL = 'https://cdn.example.com/first-frame.png';

export const IMAGE_PATH = '/v1/images/generations';

/** Both video kinds: the stored kind, Kling's path, and a small body each accepts. */
export const VIDEO_KINDS = [
  { kind: 'text-to-video', path: '/v1/videos/text2video', body: { prompt: 'a fox runs through snow' } },
  { kind: 'image-to-video', path: '/v1/videos/image2video', body: { image: FRAME_URL, prompt: 'the fox turns its head' } },
] as const;

/** The simulator never moves a task on by itself: each test moves it with `moveUpstream`. */
export const FROZEN_UPSTREAM = { processingAfterMs: 600_000 };

/** POST of a create body at `path`, with optional extra headers (Idempotency-Key). */
export const postCreate = (h: Harness, key: string, path: string, body: object, headers: Record<string, string> = {}) =>
  request(h.url)
    .post(path)
    .set({ ...bearer(key), ...headers })
    .send(body);

/** Creates a task at `path` and returns its id (the create must succeed). */
export async function createAt(h: Harness, key: string, path: string, body: object): Promise<string> {
  const res = await postCreate(h, key, path, body);
  if (res.status !== 200) throw new Error(`create at ${path} answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body.data.task_id as string;
}

/** The upstream task our submission created for our task `id` (our id is its external_task_id). */
export async function upstreamTaskOf(h: Harness, id: string): Promise<SimTask> {
  const find = () => [...h.sim.tasks.values()].find((u) => u.external_task_id === id);
  await eventually(`the upstream task of ${id}`, async () => find() !== undefined, 15_000);
  return find()!;
}

/**
 * Moves the upstream task of our task `id` to `status` (with its callback), then waits until our
 * task has applied it: its state is `localState` (a canceled task ends `failed` where the upstream
 * succeeds).
 */
export async function moveUpstream(h: Harness, id: string, status: SimTaskStatus, localState: Task['state'] = status): Promise<Task> {
  const upstream = await upstreamTaskOf(h, id);
  h.sim.setTaskStatus(upstream.task_id, status);
  return h.waitForTask(id, (t) => t.state === localState);
}
