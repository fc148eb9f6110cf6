import { pngBase64 } from './fixtures';

/**
 * A JPEG header (SOI, JFIF APP0, baseline SOF0) of the given size, as bare base64: enough for an
 * image reader to see a JPEG of width x height, without any scan data.
 */
export function jpegBase64(width: number, height: number): string {
  const app0 = [0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00];
  const sof0 = [0xff, 0xc0, 0x00, 0x11, 0x08, height >> 8, height & 0xff, width >> 8, width & 0xff, 0x03];
  const components = [0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01];
  return Buffer.from([0xff, 0xd8, ...app0, ...sof0, ...components, 0xff, 0xd9]).toString('base64');
}

/** A GIF header of the given size, as bare base64: an image, but not one Kling takes. */
export function gifBase64(width: number, height: number): string {
  const header = Buffer.alloc(13);
  header.write('GIF89a', 0, 'ascii');
  header.writeUInt16LE(width, 6);
  header.writeUInt16LE(height, 8);
  return header.toString('base64');
}

/** A 300x300 PNG header padded with zeros to `totalBytes`: readers look at the header only, so a 10 MB payload is cheap. */
export function paddedPngBase64(totalBytes: number): string {
  const header = Buffer.from(pngBase64(300, 300), 'base64').subarray(0, 33);
  const bytes = Buffer.alloc(totalBytes);
  header.copy(bytes);
  return bytes.toString('base64');
}
