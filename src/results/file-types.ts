/** What a file's first bytes say it is; null when they are no image or video this service keeps. */
export interface FileType {
  kind: 'image' | 'video';
  contentType: string;
  ext: string;
}

/** Bytes needed to tell every type below apart. */
export const SNIFF_BYTES = 12;

const ascii = (b: Buffer, at: number, s: string) => b.length >= at + s.length && b.toString('latin1', at, at + s.length) === s;

/** Magic numbers of the images and videos Kling returns (PNG, JPEG, WebP, GIF; MP4/MOV, WebM). */
export function sniffFileType(head: Buffer): FileType | null {
  if (head.length >= 8 && head.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])))
    return { kind: 'image', contentType: 'image/png', ext: 'png' };
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff)
    return { kind: 'image', contentType: 'image/jpeg', ext: 'jpg' };
  if (ascii(head, 0, 'RIFF') && ascii(head, 8, 'WEBP')) return { kind: 'image', contentType: 'image/webp', ext: 'webp' };
  if (ascii(head, 0, 'GIF87a') || ascii(head, 0, 'GIF89a')) return { kind: 'image', contentType: 'image/gif', ext: 'gif' };
  if (ascii(head, 4, 'ftyp')) {
    return ascii(head, 8, 'qt  ')
      ? { kind: 'video', contentType: 'video/quicktime', ext: 'mov' }
      : { kind: 'video', contentType: 'video/mp4', ext: 'mp4' };
  }
  if (head.length >= 4 && head.readUInt32BE(0) === 0x1a45dfa3) return { kind: 'video', contentType: 'video/webm', ext: 'webm' };
  return null;
}
