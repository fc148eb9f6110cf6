import type { TaskKind } from '../kind';
import { buildImageGenerationRequest, IMAGE_GENERATION_UPSTREAM_DEFAULTS, validateImageGenerationRequest } from './request';
import { ImagesResult, readImages, UpstreamImages } from './result';
import { imageGenerationSimulator } from './simulator';

/** `POST /v1/images/generations`: up to 9 images, each holding one image slot until the task ends. */
export const imageGeneration: TaskKind = {
  id: 'image-generation',
  path: '/v1/images/generations',
  title: 'Image generation',
  example: { prompt: 'a lighthouse at dawn', n: 2, aspect_ratio: '16:9', external_task_id: 'demo-1' },
  pool: 'image',
  models: 'image',
  requestSchema: buildImageGenerationRequest,
  validate: validateImageGenerationRequest,
  upstreamDefaults: IMAGE_GENERATION_UPSTREAM_DEFAULTS,
  slotCost: (request) => (typeof request.n === 'number' ? request.n : 1),
  upstreamResult: UpstreamImages,
  readResult: (upstream) => readImages(upstream as Parameters<typeof readImages>[0]),
  taskResult: (stored) => ({ images: (stored as { images?: unknown[] } | null)?.images ?? [] }),
  outputs: { list: 'images', kind: 'image' },
  taskResultSchema: ImagesResult,
  trackerFields: ({ slotCost }) => ({ n: slotCost }),
  // Images take seconds upstream; a task still waiting after these is stuck, not slow.
  stageLimits: { queueMs: 3_600_000, startMs: 1_800_000, totalMs: 10_800_000 },
  simulator: imageGenerationSimulator,
};
