import { imageSize } from 'image-size';

// Kling's documented limits for input images (image generation's reference image, image2video's frames and masks).
export const MAX_IMAGE_BYTES = 10 * 1024 * 1024;
export const MIN_IMAGE_SIDE_PX = 300;
export const MAX_IMAGE_ASPECT_RATIO = 2.5;

// Strict alphabet, no whitespace, no URL-safe variant. Together with length % 4 === 0 this
// also pins the padding to "", "=" or "==" at the very end. Linear: no backtracking.
const BASE64_PATTERN = /^[A-Za-z0-9+/]*={0,2}$/;

export function isStrictBase64(data: string): boolean {
  return data.length > 0 && data.length % 4 === 0 && BASE64_PATTERN.test(data);
}

function decodedLength(base64: string): number {
  const padding = base64.endsWith('==') ? 2 : base64.endsWith('=') ? 1 : 0;
  return (base64.length / 4) * 3 - padding;
}

function readImageSize(bytes: Buffer): { type?: string; width: number; height: number } | null {
  try {
    return imageSize(bytes);
  } catch {
    // image-size throws on unknown or truncated data; to the client that is simply "not an image".
    return null;
  }
}

/**
 * Checks a bare base64 input image against Kling's documented rules. `aspectRatio: false` leaves out
 * the 1:2.5..2.5:1 rule, which Kling documents for some fields only (image2video's image_tail has none).
 * Returns null when the image is acceptable, otherwise the violated rule in words.
 */
export function checkBase64Image(data: string, { aspectRatio = true }: { aspectRatio?: boolean } = {}): string | null {
  if (typeof data !== 'string' || !isStrictBase64(data)) {
    return 'must be valid base64 (A-Z, a-z, 0-9, + and / with = padding, length a multiple of 4, no whitespace)';
  }
  // Size is known from the length alone, so oversized payloads are refused before decoding.
  const byteLength = decodedLength(data);
  if (byteLength > MAX_IMAGE_BYTES) {
    return `must be at most 10 MB (${MAX_IMAGE_BYTES} bytes) once decoded (got ${byteLength} bytes)`;
  }
  const size = readImageSize(Buffer.from(data, 'base64'));
  if (size === null) {
    return 'could not be read as an image; it must be a JPEG or PNG file';
  }
  if (size.type !== 'jpg' && size.type !== 'png') {
    return `must be a JPEG or PNG image (got ${String(size.type).slice(0, 20)})`;
  }
  const { width, height } = size;
  if (!Number.isFinite(width) || !Number.isFinite(height)) {
    return 'could not be read as an image; its dimensions are missing';
  }
  if (width < MIN_IMAGE_SIDE_PX || height < MIN_IMAGE_SIDE_PX) {
    return `must be at least ${MIN_IMAGE_SIDE_PX} px wide and ${MIN_IMAGE_SIDE_PX} px high (got ${width}x${height})`;
  }
  // Multiplying instead of dividing keeps the edges exact: 2.5 * integer is exact in a double.
  if (aspectRatio && (width > MAX_IMAGE_ASPECT_RATIO * height || height > MAX_IMAGE_ASPECT_RATIO * width)) {
    return `must have an aspect ratio (width:height) between 1:2.5 and 2.5:1 (got ${width}x${height})`;
  }
  return null;
}
