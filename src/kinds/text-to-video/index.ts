import type { KindRequest, Validation } from '../kind';
import { videoKind } from '../video/video-kind';
import { buildTextToVideoRequest, TEXT_TO_VIDEO_UPSTREAM_DEFAULTS, validateTextToVideoRequest } from './request';
import { textToVideoSimulator } from './simulator';

/** `POST /v1/videos/text2video`: a video from a prompt. */
export const textToVideo = videoKind({
  id: 'text-to-video',
  path: '/v1/videos/text2video',
  title: 'Text to video',
  example: { prompt: 'waves rolling onto a beach at sunset', duration: '5', mode: 'std', external_task_id: 'demo-video-1' },
  requestSchema: buildTextToVideoRequest,
  validate: (body, models) => validateTextToVideoRequest(body, models) as Validation<KindRequest>,
  upstreamDefaults: TEXT_TO_VIDEO_UPSTREAM_DEFAULTS,
  simulator: textToVideoSimulator,
});
