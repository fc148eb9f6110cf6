import zlib from 'node:zlib';
import { PNG } from 'pngjs';

const LONG_SIDE_1K = 320;

/**
 * Small image size whose width:height is exactly the aspect ratio (so clients can check it),
 * with the long side near 320 px; 2k doubles both sides.
 */
export function imageDimensions(aspectRatio: string, resolution: string): { width: number; height: number } {
  const [w, h] = aspectRatio.split(':').map(Number);
  if (!(w > 0 && h > 0)) throw new Error(`bad aspect ratio ${aspectRatio}`);
  const unit = Math.floor(LONG_SIDE_1K / Math.max(w, h));
  const scale = resolution === '2k' ? 2 : 1;
  return { width: w * unit * scale, height: h * unit * scale };
}

/** Distinct gradients the simulator draws; each image also carries its seed, so its bytes are its own. */
const GRADIENTS = 64;
/** Rendered gradients kept (a few sizes times GRADIENTS). */
const MAX_CACHED = 512;
const rendered = new Map<string, Buffer>();

/**
 * A valid PNG with a diagonal gradient between two colours derived from seed. The pixels are one
 * of GRADIENTS gradients, drawn once per size and kept; the seed goes into a `tEXt` chunk, so two
 * seeds never give the same bytes (as two generated images never do). Drawing and compressing
 * costs milliseconds per image, which a simulator serving hundreds of results a second cannot spend.
 */
export function renderPng(width: number, height: number, seed: number): Buffer {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`invalid PNG size ${width}x${height}`);
  }
  const gradient = (seed >>> 0) % GRADIENTS;
  const key = `${width}x${height}/${gradient}`;
  let base = rendered.get(key);
  if (!base) {
    base = drawGradient(width, height, seedFromText(`gradient ${gradient}`));
    if (rendered.size >= MAX_CACHED) rendered.delete(rendered.keys().next().value!);
    rendered.set(key, base);
  }
  return withTextChunk(base, 'Comment', `kling simulator image ${(seed >>> 0).toString(16).padStart(8, '0')}`);
}

function drawGradient(width: number, height: number, seed: number): Buffer {
  const from = colourFromSeed(seed);
  const to = colourFromSeed(seed ^ 0x5bd1e995);
  const png = new PNG({ width, height });
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = (x / width + y / height) / 2;
      const offset = (y * width + x) * 4;
      for (let c = 0; c < 3; c++) png.data[offset + c] = Math.round(from[c] + (to[c] - from[c]) * t);
      png.data[offset + 3] = 255;
    }
  }
  // A fixed filter skips pngjs's per-row adaptive filter search, which costs hundreds of ms per
  // image (seconds at 2k) under jest; "up" still compresses a gradient well.
  return PNG.sync.write(png, { filterType: 2 });
}

/** The PNG with a `tEXt` chunk after its header chunk (signature 8 bytes, IHDR 25). */
function withTextChunk(png: Buffer, keyword: string, text: string): Buffer {
  const data = Buffer.from(`${keyword}\0${text}`, 'latin1');
  const chunk = Buffer.alloc(12 + data.length);
  chunk.writeUInt32BE(data.length, 0);
  chunk.write('tEXt', 4, 'latin1');
  data.copy(chunk, 8);
  chunk.writeUInt32BE(zlib.crc32(chunk.subarray(4, 8 + data.length)), 8 + data.length);
  const afterHeader = 8 + 25;
  return Buffer.concat([png.subarray(0, afterHeader), chunk, png.subarray(afterHeader)]);
}

/** Stable 32-bit seed for a string (FNV-1a). */
export function seedFromText(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

function colourFromSeed(seed: number): [number, number, number] {
  const s = seed >>> 0;
  return [s & 0xff, (s >>> 8) & 0xff, (s >>> 16) & 0xff];
}
