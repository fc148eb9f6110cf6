import type { KindRequest, Validation } from '../kind';
import { videoKind } from '../video/video-kind';
import { buildImageToVideoRequest, IMAGE_TO_VIDEO_UPSTREAM_DEFAULTS, validateImageToVideoRequest } from './request';
import { imageToVideoSimulator } from './simulator';

/** `POST /v1/videos/image2video`: a video from a first (and optionally a last) frame. */
export const imageToVideo = videoKind({
  id: 'image-to-video',
  path: '/v1/videos/image2video',
  title: 'Image to video',
  example: { image: 'https://example.com/first-frame.png', prompt: 'the boat drifts out to sea', duration: '5' },
  requestSchema: buildImageToVideoRequest,
  validate: (body, models) => validateImageToVideoRequest(body, models) as Validation<KindRequest>,
  upstreamDefaults: IMAGE_TO_VIDEO_UPSTREAM_DEFAULTS,
  simulator: imageToVideoSimulator,
});
