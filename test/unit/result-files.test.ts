import { createFileLinks } from '../../src/results/file-links';
import { sniffFileType } from '../../src/results/file-types';
import { upstreamIsPrivate } from '../../src/results/blob-stores';

describe('signed result links', () => {
  const links = createFileLinks({ baseUrl: () => 'https://kt.example', key: Buffer.alloc(32, 7), ttlMs: 3_600_000 });
  const at = new Date('2026-12-03T10:00:30Z');
  const parts = (url: string) => {
    const u = new URL(url);
    return [u.pathname, u.searchParams.get('expires') ?? undefined, u.searchParams.get('signature') ?? undefined] as const;
  };

  it('accepts its own link until its expiry, rounded up to the minute, and refuses it after', () => {
    const url = links.url({ id: '0b4f7a0e-6b1b-4c1e-9d1f-3a2b1c0d9e8f', ext: 'mp4' }, at);
    expect(url.startsWith('https://kt.example/v1/files/0b4f7a0e-6b1b-4c1e-9d1f-3a2b1c0d9e8f.mp4?expires=')).toBe(true);
    const [p, expires, signature] = parts(url);
    expect(Number(expires)).toBe(Date.parse('2026-12-03T11:01:00Z') / 1000);
    expect(links.check(p, expires, signature, at)).toBe('ok');
    expect(links.check(p, expires, signature, new Date('2026-12-03T11:00:59Z'))).toBe('ok');
    expect(links.check(p, expires, signature, new Date('2026-12-03T11:01:00Z'))).toBe('expired');
  });

  it('refuses a link with any part changed, or signed under another key', () => {
    const [p, expires, signature] = parts(links.url({ id: '0b4f7a0e-6b1b-4c1e-9d1f-3a2b1c0d9e8f', ext: 'png' }, at));
    expect(links.check(p.replace('.png', '.jpg'), expires, signature, at)).toBe('invalid');
    expect(links.check(p.replace('0b4f', '0b4e'), expires, signature, at)).toBe('invalid');
    expect(links.check(p, String(Number(expires) + 60), signature, at)).toBe('invalid');
    expect(links.check(p, expires, undefined, at)).toBe('invalid');
    expect(links.check(p, expires, `${signature}x`, at)).toBe('invalid');
    const other = createFileLinks({ baseUrl: () => '', key: Buffer.alloc(32, 8), ttlMs: 3_600_000 });
    expect(other.check(p, expires, signature, at)).toBe('invalid');
  });
});

describe('file types from the first bytes', () => {
  const bytes = (...b: (number | string)[]) =>
    Buffer.concat(b.map((x) => (typeof x === 'string' ? Buffer.from(x, 'latin1') : Buffer.from([x]))));

  it('knows the images and videos Kling returns, and nothing else', () => {
    expect(sniffFileType(bytes(0x89, 'PNG\r\n', 0x1a, '\n', 0, 0, 0, 13))?.contentType).toBe('image/png');
    expect(sniffFileType(bytes(0xff, 0xd8, 0xff, 0xe0, 'JFIF\0\0\0\0'))?.contentType).toBe('image/jpeg');
    expect(sniffFileType(bytes('RIFF', 0, 0, 0, 0, 'WEBP'))?.contentType).toBe('image/webp');
    expect(sniffFileType(bytes(0, 0, 0, 0x20, 'ftypisom'))).toEqual({ kind: 'video', contentType: 'video/mp4', ext: 'mp4' });
    expect(sniffFileType(bytes('<!DOCTYPE html>'))).toBeNull();
    expect(sniffFileType(bytes('{"code":404}'))).toBeNull();
  });
});

describe('whether result URLs may be on a private network', () => {
  it('only when the upstream itself is (the simulator, a loopback or private KLING_BASE_URL)', () => {
    expect(upstreamIsPrivate({ useSimulator: true, KLING_BASE_URL: undefined })).toBe(true);
    expect(upstreamIsPrivate({ useSimulator: false, KLING_BASE_URL: 'http://127.0.0.1:4000' })).toBe(true);
    expect(upstreamIsPrivate({ useSimulator: false, KLING_BASE_URL: 'http://10.1.2.3/kling' })).toBe(true);
    expect(upstreamIsPrivate({ useSimulator: false, KLING_BASE_URL: 'https://api-singapore.klingai.com' })).toBe(false);
    expect(upstreamIsPrivate({ useSimulator: false, KLING_BASE_URL: 'http://8.8.8.8' })).toBe(false);
  });
});
