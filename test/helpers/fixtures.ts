import { PNG } from 'pngjs';

/** A real PNG of the given size, as bare base64 (what Kling's `image` field takes). */
export function pngBase64(width: number, height: number): string {
  const png = new PNG({ width, height });
  png.data.fill(200);
  // A fixed filter skips pngjs's adaptive filter search (slow under jest).
  return PNG.sync.write(png, { filterType: 2 }).toString('base64');
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
