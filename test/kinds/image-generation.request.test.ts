import { PNG } from 'pngjs';
import { z } from 'zod';
import {
  buildImageGenerationRequest,
  validateImageGenerationRequest,
  type ValidationResult,
} from '../../src/kinds/image-generation/request';
import { checkBase64Image } from '../../src/kinds/shared/image-check';

const MODELS = ['kling-v3', 'kling-v2-1'] as const;
const TEN_MB = 10 * 1024 * 1024;

function validate(body: unknown): ValidationResult {
  return validateImageGenerationRequest(body, MODELS);
}

function withPrompt(fields: Record<string, unknown>): Record<string, unknown> {
  return { prompt: 'a red fox in the snow', ...fields };
}

function expectAccepted(body: unknown): void {
  const result = validate(body);
  if (!result.ok) throw new Error(`expected acceptance, got ${result.message}`);
}

function expectRefused(body: unknown, field: string, message: string | RegExp): void {
  const result = validate(body);
  if (result.ok) throw new Error(`expected refusal on ${field}, but the body was accepted`);
  expect(result.field).toBe(field);
  if (typeof message === 'string') expect(result.message).toBe(message);
  else expect(result.message).toMatch(message);
  expect(result.message.startsWith(`${field}: `)).toBe(true);
}

function pngBase64(width: number, height: number): string {
  // filterType 0 skips pngjs's per-row filter search, which is slow for larger images.
  return PNG.sync.write(new PNG({ width, height }), { filterType: 0 }).toString('base64');
}

// SOI, a JFIF APP0 segment and a baseline SOF0 frame header: enough for image-size to read
// the dimensions, without any scan data.
function jpegBytes(width: number, height: number): Buffer {
  return Buffer.from([
    0xff,
    0xd8,
    0xff,
    0xe0,
    0x00,
    0x10,
    0x4a,
    0x46,
    0x49,
    0x46,
    0x00,
    0x01,
    0x01,
    0x00,
    0x00,
    0x01,
    0x00,
    0x01,
    0x00,
    0x00,
    0xff,
    0xc0,
    0x00,
    0x11,
    0x08,
    height >> 8,
    height & 0xff,
    width >> 8,
    width & 0xff,
    0x03,
    0x01,
    0x22,
    0x00,
    0x02,
    0x11,
    0x01,
    0x03,
    0x11,
    0x01,
    0xff,
    0xd9,
  ]);
}

function gifBytes(width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.write('GIF89a', 0, 'ascii');
  header.writeUInt16LE(width, 6);
  header.writeUInt16LE(height, 8);
  return header;
}

// A valid 300x300 PNG header (signature + IHDR) followed by zero padding up to `totalBytes`:
// image-size reads only the header, so a 10 MB payload stays cheap to check.
function paddedPngBase64(totalBytes: number): string {
  const header = Buffer.from(pngBase64(300, 300), 'base64').subarray(0, 33);
  const bytes = Buffer.alloc(totalBytes);
  header.copy(bytes);
  return bytes.toString('base64');
}

function pseudoRandomBytes(length: number): Buffer {
  const bytes = Buffer.alloc(length);
  let state = 0x2545f491;
  for (let i = 0; i < length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    bytes[i] = state >>> 24;
  }
  bytes[0] = 0x13; // not the first byte of any image signature
  return bytes;
}

describe('validateImageGenerationRequest', () => {
  describe('body', () => {
    it('accepts a minimal body and fills model_name with the first configured model', () => {
      expect(validate({ prompt: 'a fox' })).toEqual({ ok: true, value: { model_name: 'kling-v3', prompt: 'a fox' } });
    });

    it('forwards every documented field unchanged and adds no other defaults', () => {
      const body = {
        model_name: 'kling-v2-1',
        prompt: 'a fox',
        image: 'https://cdn.example.com/fox.png',
        image_reference: 'subject',
        image_fidelity: 0.5,
        human_fidelity: 0.7,
        element_list: [{ element_id: 1 }, { element_id: 9007199254740991 }],
        resolution: '2k',
        n: 4,
        aspect_ratio: '21:9',
        watermark_info: { enabled: true },
        callback_url: 'https://hooks.example.com/kling',
        external_task_id: 'order-42',
      };
      expect(validate(body)).toEqual({ ok: true, value: body });
    });

    it.each([[[]], ['prompt'], [42], [null], [undefined], [true]])('refuses %p as a body that is not a JSON object', (body) => {
      expectRefused(body, 'body', 'body: must be a JSON object');
    });

    it('refuses unknown fields, naming the field', () => {
      expectRefused(withPrompt({ seed: 7 }), 'seed', 'seed: unknown field');
    });

    it('reports a misspelt field name rather than the missing field it was meant to be', () => {
      expectRefused({ promt: 'a fox' }, 'promt', 'promt: unknown field');
    });

    it('refuses an own __proto__ key as an unknown field', () => {
      expectRefused(JSON.parse('{"prompt":"a fox","__proto__":{"polluted":true}}'), '__proto__', '__proto__: unknown field');
    });

    it('truncates a huge unknown field name in the message', () => {
      const result = validate(withPrompt({ ['k'.repeat(100_000)]: 1 }));
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.message.length).toBeLessThan(100);
    });

    it('reports only the first violation, in field order', () => {
      expect(validate({ prompt: 5, n: 0, aspect_ratio: 'x' })).toEqual({ ok: false, field: 'prompt', message: 'prompt: must be a string' });
    });

    it('refuses null for an optional field instead of treating it as absent', () => {
      expectRefused(withPrompt({ negative_prompt: null }), 'negative_prompt', /^negative_prompt: must be a string, not null/);
    });
  });

  describe('model_name', () => {
    it('accepts any configured model', () => {
      expect(validate(withPrompt({ model_name: 'kling-v2-1' }))).toMatchObject({ ok: true, value: { model_name: 'kling-v2-1' } });
    });

    it('refuses a model that is not configured, listing the allowed ones', () => {
      expectRefused(withPrompt({ model_name: 'kling-v9' }), 'model_name', 'model_name: must be one of: kling-v3, kling-v2-1');
    });

    it('refuses a model_name that is not a string', () => {
      expectRefused(withPrompt({ model_name: 3 }), 'model_name', /^model_name: must be a string/);
    });

    it('refuses to build a schema without any configured model', () => {
      expect(() => buildImageGenerationRequest([])).toThrow(/at least one model/);
    });
  });

  describe('prompt', () => {
    it('accepts 2500 characters', () => {
      expectAccepted({ prompt: 'p'.repeat(2500) });
    });

    it('refuses 2501 characters', () => {
      expectRefused({ prompt: 'p'.repeat(2501) }, 'prompt', 'prompt: must be at most 2500 characters');
    });

    it('refuses a missing prompt', () => {
      expectRefused({}, 'prompt', 'prompt: is required');
    });

    it.each([
      ['empty', ''],
      ['spaces-only', '   '],
      ['newline-and-tab', '\n\t'],
    ])('refuses a blank prompt (%s)', (_case, prompt) => {
      expectRefused({ prompt }, 'prompt', 'prompt: must not be blank');
    });

    it('refuses a prompt that is not a string', () => {
      expectRefused({ prompt: 12 }, 'prompt', 'prompt: must be a string');
    });
  });

  describe('negative_prompt', () => {
    it('accepts 2500 characters', () => {
      expectAccepted(withPrompt({ negative_prompt: 'n'.repeat(2500) }));
    });

    it('refuses 2501 characters', () => {
      expectRefused(
        withPrompt({ negative_prompt: 'n'.repeat(2501) }),
        'negative_prompt',
        'negative_prompt: must be at most 2500 characters',
      );
    });

    it('refuses negative_prompt together with image', () => {
      expectRefused(
        withPrompt({ negative_prompt: 'blurry', image: 'https://cdn.example.com/fox.png' }),
        'negative_prompt',
        'negative_prompt: is not supported together with image (image-to-image)',
      );
    });
  });

  describe('image', () => {
    it.each([['http://cdn.example.com/fox.png'], ['https://cdn.example.com/fox.jpg?sig=abc']])('accepts the URL %s', (image) => {
      expectAccepted(withPrompt({ image }));
    });

    it.each([['ftp://cdn.example.com/fox.png'], ['file:///etc/passwd'], ['javascript:alert(1)']])(
      'refuses the non-http URL %s',
      (image) => {
        expectRefused(withPrompt({ image }), 'image', /^image: must be an http or https URL/);
      },
    );

    it('refuses a base64 data URL with the prefix message', () => {
      expectRefused(
        withPrompt({ image: `data:image/png;base64,${pngBase64(300, 300)}` }),
        'image',
        'image: must be bare base64 without a "data:" prefix',
      );
    });

    it('accepts a bare base64 PNG', () => {
      expectAccepted(withPrompt({ image: pngBase64(300, 300) }));
    });

    it.each([['abc'], ['iVBORw0KGgo='.replace('=', '*')], ['iVBO Rw0K'], ['iVBORw0K\n'], ['iVBORw==AAAA'], ['A===']])(
      'refuses %p, which is neither a URL nor strict base64',
      (image) => {
        expectRefused(withPrompt({ image }), 'image', /^image: must be an http\(s\) URL or valid bare base64/);
      },
    );

    it('refuses an empty image', () => {
      expectRefused(withPrompt({ image: '' }), 'image', 'image: must not be empty');
    });

    it('refuses a base64 payload that is not an image, with the image rule in the message', () => {
      expectRefused(withPrompt({ image: gifBytes(400, 400).toString('base64') }), 'image', 'image: must be a JPEG or PNG image (got gif)');
    });

    it('refuses an image that is too small', () => {
      expectRefused(
        withPrompt({ image: pngBase64(299, 400) }),
        'image',
        /^image: must be at least 300 px wide and 300 px high \(got 299x400\)/,
      );
    });
  });

  describe('image_reference', () => {
    it.each([['subject'], ['face']])('accepts %s with an image', (imageReference) => {
      expectAccepted(withPrompt({ image: 'https://cdn.example.com/face.png', image_reference: imageReference }));
    });

    it('refuses image_reference without image', () => {
      expectRefused(withPrompt({ image_reference: 'face' }), 'image_reference', 'image_reference: requires image');
    });

    it('refuses an unknown image_reference', () => {
      expectRefused(
        withPrompt({ image: 'https://cdn.example.com/a.png', image_reference: 'body' }),
        'image_reference',
        'image_reference: must be "subject" or "face"',
      );
    });
  });

  describe.each([['image_fidelity'], ['human_fidelity']])('%s', (field) => {
    it.each([[0], [1], [0.8]])('accepts %p', (value) => {
      expectAccepted(withPrompt({ [field]: value }));
    });

    it.each([[-0.01], [1.01]])('refuses %p as outside [0, 1]', (value) => {
      expectRefused(withPrompt({ [field]: value }), field, `${field}: must be between 0 and 1`);
    });

    it('refuses a numeric string', () => {
      expectRefused(withPrompt({ [field]: '0.5' }), field, `${field}: must be a number`);
    });
  });

  describe('element_list', () => {
    const elements = (count: number) => Array.from({ length: count }, (_, i) => ({ element_id: i + 1 }));

    it('accepts 10 elements without an image', () => {
      expectAccepted(withPrompt({ element_list: elements(10) }));
    });

    it('refuses 11 elements', () => {
      expectRefused(withPrompt({ element_list: elements(11) }), 'element_list', 'element_list: must have at most 10 elements');
    });

    it('accepts 9 elements plus an image', () => {
      expectAccepted(withPrompt({ element_list: elements(9), image: 'https://cdn.example.com/a.png' }));
    });

    it('refuses 10 elements plus an image', () => {
      expectRefused(
        withPrompt({ element_list: elements(10), image: 'https://cdn.example.com/a.png' }),
        'element_list',
        'element_list: elements plus reference images must be at most 10 (got 10 elements and 1 image)',
      );
    });

    it('refuses a non-integer element_id, naming its position', () => {
      expectRefused(
        withPrompt({ element_list: [{ element_id: 1 }, { element_id: 2 }, { element_id: 2.5 }] }),
        'element_list[2].element_id',
        'element_list[2].element_id: must be an integer',
      );
    });

    it.each([[0], [-3]])('refuses the non-positive element_id %p', (elementId) => {
      expectRefused(
        withPrompt({ element_list: [{ element_id: elementId }] }),
        'element_list[0].element_id',
        'element_list[0].element_id: must be a positive integer',
      );
    });

    it.each([[2 ** 53], [-(2 ** 53)]])('refuses the element_id %p beyond the safe integer range', (elementId) => {
      expectRefused(
        withPrompt({ element_list: [{ element_id: elementId }] }),
        'element_list[0].element_id',
        'element_list[0].element_id: must be an integer within the safe integer range',
      );
    });

    it.each([['123'], [null], [true]])('refuses the element_id %p that is not a number', (elementId) => {
      expectRefused(
        withPrompt({ element_list: [{ element_id: elementId }] }),
        'element_list[0].element_id',
        /^element_list\[0\]\.element_id: must be an integer/,
      );
    });

    it('refuses unknown keys inside an element', () => {
      expectRefused(
        withPrompt({ element_list: [{ element_id: 1, weight: 2 }] }),
        'element_list[0].weight',
        'element_list[0].weight: unknown field',
      );
    });

    it('refuses an element that is not an object', () => {
      expectRefused(withPrompt({ element_list: [7] }), 'element_list[0]', /^element_list\[0\]: must be an object/);
    });

    it('refuses an element_list that is not an array', () => {
      expectRefused(withPrompt({ element_list: { element_id: 1 } }), 'element_list', 'element_list: must be an array');
    });
  });

  describe('resolution, n and aspect_ratio', () => {
    it.each([['1k'], ['2k']])('accepts resolution %s', (resolution) => {
      expectAccepted(withPrompt({ resolution }));
    });

    it('refuses resolution 4k', () => {
      expectRefused(withPrompt({ resolution: '4k' }), 'resolution', 'resolution: must be "1k" or "2k"');
    });

    it.each([[1], [9]])('accepts n = %p', (n) => {
      expectAccepted(withPrompt({ n }));
    });

    it.each([[0], [10]])('refuses n = %p as outside 1..9', (n) => {
      expectRefused(withPrompt({ n }), 'n', 'n: must be between 1 and 9');
    });

    it.each([[1.5], ['2']])('refuses n = %p as not an integer', (n) => {
      expectRefused(withPrompt({ n }), 'n', 'n: must be an integer');
    });

    it.each([['1:1'], ['16:9'], ['4:3'], ['3:2'], ['2:3'], ['3:4'], ['9:16'], ['21:9']])('accepts aspect_ratio %s', (aspectRatio) => {
      expectAccepted(withPrompt({ aspect_ratio: aspectRatio }));
    });

    it.each([['5:4'], ['16/9'], [1]])('refuses aspect_ratio %p', (aspectRatio) => {
      expectRefused(withPrompt({ aspect_ratio: aspectRatio }), 'aspect_ratio', /^aspect_ratio: must be one of 1:1, 16:9/);
    });
  });

  describe('watermark_info', () => {
    it.each([[true], [false]])('accepts enabled = %p', (enabled) => {
      expectAccepted(withPrompt({ watermark_info: { enabled } }));
    });

    it('refuses a non-boolean enabled', () => {
      expectRefused(
        withPrompt({ watermark_info: { enabled: 'yes' } }),
        'watermark_info.enabled',
        'watermark_info.enabled: must be a boolean',
      );
    });

    it('refuses a missing enabled', () => {
      expectRefused(withPrompt({ watermark_info: {} }), 'watermark_info.enabled', 'watermark_info.enabled: is required');
    });

    it('refuses unknown keys inside watermark_info', () => {
      expectRefused(
        withPrompt({ watermark_info: { enabled: true, text: 'x' } }),
        'watermark_info.text',
        'watermark_info.text: unknown field',
      );
    });

    it('refuses a watermark_info that is not an object', () => {
      expectRefused(withPrompt({ watermark_info: true }), 'watermark_info', /^watermark_info: must be an object/);
    });
  });

  describe('callback_url', () => {
    const urlOfLength = (length: number) => {
      const base = 'https://hooks.example.com/';
      return base + 'c'.repeat(length - base.length);
    };

    it('accepts an http URL of 2048 characters', () => {
      expectAccepted(withPrompt({ callback_url: urlOfLength(2048) }));
      expectAccepted(withPrompt({ callback_url: 'http://10.0.0.5:8080/hook' }));
    });

    it('refuses 2049 characters', () => {
      expectRefused(withPrompt({ callback_url: urlOfLength(2049) }), 'callback_url', 'callback_url: must be at most 2048 characters');
    });

    it.each([['/relative/hook'], ['hooks.example.com/kling'], ['']])('refuses the non-absolute URL %p', (callbackUrl) => {
      expectRefused(withPrompt({ callback_url: callbackUrl }), 'callback_url', 'callback_url: must be an absolute http(s) URL');
    });

    it.each([['ftp://hooks.example.com/'], ['mailto:ops@example.com'], ['FTP://hooks.example.com/'], ['JavaScript:alert(1)']])(
      'refuses the non-http URL %s',
      (callbackUrl) => {
        expectRefused(withPrompt({ callback_url: callbackUrl }), 'callback_url', /^callback_url: must be an http or https URL/);
      },
    );

    it.each([
      ['http://hooks.example.com/kling', 'http://hooks.example.com/kling'],
      ['HTTP://hooks.example.com/kling', 'http://hooks.example.com/kling'],
      ['Http://hooks.example.com/kling', 'http://hooks.example.com/kling'],
      ['https://hooks.example.com/kling', 'https://hooks.example.com/kling'],
      ['HTTPS://Hooks.Example.COM:443/kling', 'https://hooks.example.com/kling'],
      ['hTtPs://hooks.example.com:8443/a b?x=1', 'https://hooks.example.com:8443/a%20b?x=1'],
      ['  https://hooks.example.com  ', 'https://hooks.example.com/'],
    ])('accepts %p and keeps its serialised form %p', (written, stored) => {
      const result = validate(withPrompt({ callback_url: written }));
      expect(result).toEqual({ ok: true, value: expect.objectContaining({ callback_url: stored }) });
    });

    it.each([['https://user:secret@hooks.example.com/'], ['https://user@hooks.example.com/'], ['HTTP://:secret@hooks.example.com/']])(
      'refuses credentials in %s',
      (callbackUrl) => {
        expectRefused(
          withPrompt({ callback_url: callbackUrl }),
          'callback_url',
          'callback_url: must not contain credentials (user:password@)',
        );
      },
    );

    it('refuses a URL that percent-encoding takes past 2048 characters', () => {
      const written = 'https://hooks.example.com/' + ' '.repeat(1000) + 'x';
      expectAccepted(withPrompt({ callback_url: 'https://hooks.example.com/' + ' '.repeat(600) + 'x' }));
      expectRefused(
        withPrompt({ callback_url: written }),
        'callback_url',
        /^callback_url: must be at most 2048 characters once normalised/,
      );
    });
  });

  describe('external_task_id', () => {
    it('accepts 1 and 256 characters', () => {
      expectAccepted(withPrompt({ external_task_id: 'x' }));
      expectAccepted(withPrompt({ external_task_id: 'x'.repeat(256) }));
    });

    it('refuses 257 characters', () => {
      expectRefused(
        withPrompt({ external_task_id: 'x'.repeat(257) }),
        'external_task_id',
        'external_task_id: must be at most 256 characters',
      );
    });

    it('refuses an empty id', () => {
      expectRefused(withPrompt({ external_task_id: '' }), 'external_task_id', 'external_task_id: must not be empty');
    });

    it.each([
      ['a newline', 'a\nb'],
      ['a NUL', 'a\u0000'],
      ['DEL', '\u007f'],
      ['a C1 control (NEL)', 'a\u0085b'],
    ])('refuses an id containing %s', (_case, id) => {
      expectRefused(withPrompt({ external_task_id: id }), 'external_task_id', 'external_task_id: must not contain control characters');
    });
  });

  describe('robustness', () => {
    it('returns a result instead of throwing for junk bodies', () => {
      let deep: unknown = 'bottom';
      for (let i = 0; i < 10_000; i++) deep = [deep, { deep }];
      const junk: unknown[] = [
        { prompt: deep },
        withPrompt({ element_list: [deep] }),
        withPrompt({ watermark_info: { enabled: deep } }),
        { prompt: 'x'.repeat(5_000_000) },
        withPrompt({ image: 'A'.repeat(4_000_000) }),
        withPrompt({ image: 'https:'.padEnd(1_000_000, '/') }),
        withPrompt({ callback_url: 'https://'.padEnd(1_000_000, 'x') }),
        withPrompt({ n: Number.NaN }),
        withPrompt({ n: Infinity }),
        Object.create(null),
        new Date(0),
      ];
      for (const body of junk) {
        const result = validate(body);
        expect(result.ok).toBe(false);
        if (!result.ok) expect(result.message.length).toBeLessThan(300);
      }
    });

    it('returns a result when reading a field throws', () => {
      const hostile = Object.defineProperty({}, 'prompt', {
        enumerable: true,
        get() {
          throw new Error('boom');
        },
      });
      expect(validate(hostile)).toEqual({ ok: false, field: 'body', message: 'body: could not be validated' });
    });
  });

  describe('schema', () => {
    it('converts to JSON Schema with a description on every field', () => {
      const jsonSchema = z.toJSONSchema(buildImageGenerationRequest(MODELS), { io: 'input' }) as {
        properties: Record<string, { description?: string }>;
        required: string[];
      };
      expect(Object.keys(jsonSchema.properties)).toHaveLength(14);
      for (const [name, property] of Object.entries(jsonSchema.properties)) {
        expect([name, typeof property.description]).toEqual([name, 'string']);
      }
      expect(jsonSchema.required).toEqual(['prompt']);
    });
  });
});

describe('checkBase64Image', () => {
  it.each([
    [300, 300],
    [300, 750],
    [750, 300],
    [1024, 768],
  ])('accepts a %ix%i PNG', (width, height) => {
    expect(checkBase64Image(pngBase64(width, height))).toBeNull();
  });

  it.each([
    [299, 400],
    [400, 299],
  ])('refuses a %ix%i PNG as smaller than 300 px', (width, height) => {
    expect(checkBase64Image(pngBase64(width, height))).toBe(`must be at least 300 px wide and 300 px high (got ${width}x${height})`);
  });

  it.each([
    [300, 751],
    [751, 300],
  ])('refuses a %ix%i PNG as beyond the 2.5 aspect ratio', (width, height) => {
    expect(checkBase64Image(pngBase64(width, height))).toBe(
      `must have an aspect ratio (width:height) between 1:2.5 and 2.5:1 (got ${width}x${height})`,
    );
  });

  it('accepts a JPEG', () => {
    expect(checkBase64Image(jpegBytes(640, 480).toString('base64'))).toBeNull();
  });

  it('applies the size rules to JPEGs too', () => {
    expect(checkBase64Image(jpegBytes(640, 200).toString('base64'))).toMatch(/at least 300 px/);
    expect(checkBase64Image(jpegBytes(1000, 300).toString('base64'))).toMatch(/aspect ratio/);
  });

  it('refuses a GIF', () => {
    expect(checkBase64Image(gifBytes(400, 400).toString('base64'))).toBe('must be a JPEG or PNG image (got gif)');
  });

  it('refuses random bytes', () => {
    expect(checkBase64Image(pseudoRandomBytes(4096).toString('base64'))).toMatch(/JPEG or PNG/);
  });

  it('refuses a truncated PNG', () => {
    expect(checkBase64Image(Buffer.from([0x89, 0x50, 0x4e, 0x47]).toString('base64'))).toMatch(/JPEG or PNG/);
  });

  it('accepts a payload of exactly 10 MB', () => {
    expect(checkBase64Image(paddedPngBase64(TEN_MB))).toBeNull();
  });

  it('refuses a payload over 10 MB once decoded', () => {
    expect(checkBase64Image(paddedPngBase64(TEN_MB + 1))).toBe(
      `must be at most 10 MB (${TEN_MB} bytes) once decoded (got ${TEN_MB + 1} bytes)`,
    );
  });

  it('refuses an over-10 MB payload through the request validation, naming image', () => {
    expectRefused(withPrompt({ image: paddedPngBase64(TEN_MB + 1) }), 'image', /^image: must be at most 10 MB/);
  });

  it.each([['data:image/png;base64,AAAA'], ['AAA'], ['AA AA'], ['AA-_'], ['']])('refuses the non-base64 string %p', (data) => {
    expect(checkBase64Image(data)).toMatch(/^must be valid base64/);
  });
});
