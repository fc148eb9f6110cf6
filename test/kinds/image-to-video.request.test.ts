import { z } from 'zod';
import {
  buildImageToVideoRequest,
  IMAGE_TO_VIDEO_UPSTREAM_DEFAULTS,
  validateImageToVideoRequest,
} from '../../src/kinds/image-to-video/request';
import { pngBase64 } from '../helpers/fixtures';
import { gifBase64, jpegBase64, paddedPngBase64 } from '../helpers/images';
import { validationExpectations } from '../helpers/validation';

// 'proxy-video' stands for a name outside Kling's pattern, which gets no model-keyed rule.
const MODELS = ['kling-v3', 'kling-v2-6', 'kling-v2-5-turbo', 'kling-v2-1', 'kling-v1', 'proxy-video'] as const;
const TEN_MB = 10 * 1024 * 1024;
const FIRST = 'https://cdn.example.com/first.png';
const LAST = 'https://cdn.example.com/last.png';
const MASK = 'https://cdn.example.com/mask.png';

const validate = (body: unknown) => validateImageToVideoRequest(body, MODELS);
const { expectAccepted, expectRefused } = validationExpectations(validate);

const withImage = (fields: Record<string, unknown>) => ({ image: FIRST, ...fields });
const points = (count: number) => Array.from({ length: count }, (_, i) => ({ x: i, y: 2 * i }));
const brush = (count = 2) => ({ mask: MASK, trajectories: points(count) });

describe('validateImageToVideoRequest', () => {
  describe('body', () => {
    it('accepts an image alone, fills model_name with the first configured model and no other default', () => {
      expect(validate({ image: FIRST })).toEqual({ ok: true, value: { model_name: 'kling-v3', image: FIRST } });
    });

    it('forwards every documented field unchanged', () => {
      const withVoices = {
        model_name: 'kling-v3',
        image: FIRST,
        prompt: 'the fox <<<voice_1>>> says hello',
        negative_prompt: 'blurry',
        multi_shot: true,
        shot_type: 'customize',
        multi_prompt: [{ index: 1, prompt: 'the fox turns', duration: '10' }],
        voice_list: [{ voice_id: 'voice-a' }, { voice_id: 'voice-b' }],
        sound: 'on',
        cfg_scale: 0.2,
        mode: 'pro',
        static_mask: MASK,
        dynamic_masks: [brush(77)],
        aspect_ratio: '1:1',
        duration: '10',
        watermark_info: { enabled: false },
        callback_url: 'https://hooks.example.com/kling',
        external_task_id: 'order-42',
      };
      expect(validate(withVoices)).toEqual({ ok: true, value: withVoices });
      const withFrames = {
        model_name: 'kling-v2-1',
        image: FIRST,
        image_tail: LAST,
        element_list: [{ element_id: 1 }, { element_id: 2 }, { element_id: 3 }],
        duration: '5',
      };
      expect(validate(withFrames)).toEqual({ ok: true, value: withFrames });
      const withCamera = { model_name: 'kling-v1', image: FIRST, camera_control: { type: 'simple', config: { tilt: 2 } } };
      expect(validate(withCamera)).toEqual({ ok: true, value: withCamera });
    });

    it.each([[[]], ['image'], [null]])('refuses %p as a body that is not a JSON object', (body) => {
      expectRefused(body, 'body', 'body: must be a JSON object');
    });

    it.each([['seed'], ['image_url'], ['tail_image'], ['model']])('refuses the unknown field %s', (field) => {
      expectRefused(withImage({ [field]: 'x' }), field, `${field}: unknown field`);
    });

    it('reports only the first violation, in field order', () => {
      expect(validate({ image: 7, prompt: 7, mode: 'x' })).toEqual({ ok: false, field: 'image', message: 'image: must be a string' });
    });

    it.each([
      ['prompt', withImage({ prompt: 'a\u0000' })],
      ['voice_list.0.voice_id', withImage({ voice_list: [{ voice_id: 'v\u0000' }], sound: 'on' })],
    ])('refuses the NUL character in %s', (field, body) => {
      expectRefused(body, field, `${field}: must not contain the NUL character (\\u0000)`);
    });

    it('returns a result instead of throwing for junk bodies', () => {
      let deep: unknown = 'bottom';
      for (let i = 0; i < 10_000; i++) deep = [deep, { deep }];
      const junk = [
        { image: deep },
        withImage({ dynamic_masks: [deep] }),
        withImage({ voice_list: deep }),
        { image: 'A'.repeat(4_000_000) },
        { image: 'https:'.padEnd(1_000_000, '/') },
      ];
      for (const body of junk) {
        const result = validate(body);
        expect(result.ok).toBe(false);
        if (!result.ok) expect(result.message.length).toBeLessThan(300);
      }
    });
  });

  describe('model_name', () => {
    it('accepts image2video-only models such as kling-v2-1', () => {
      expect(expectAccepted(withImage({ model_name: 'kling-v2-1' })).model_name).toBe('kling-v2-1');
    });

    it('refuses a model that is not configured, listing the allowed ones', () => {
      expectRefused(
        withImage({ model_name: 'kling-v9' }),
        'model_name',
        'model_name: must be one of: kling-v3, kling-v2-6, kling-v2-5-turbo, kling-v2-1, kling-v1, proxy-video',
      );
    });

    it('refuses to build a schema without any configured model', () => {
      expect(() => buildImageToVideoRequest([])).toThrow(/at least one model/);
    });
  });

  describe('image', () => {
    it.each([
      ['an http URL', 'http://cdn.example.com/fox.jpg?sig=abc'],
      ['a 300x300 PNG', pngBase64(300, 300)],
      ['a 750x300 PNG (2.5:1)', pngBase64(750, 300)],
      ['a 300x750 PNG (1:2.5)', pngBase64(300, 750)],
      ['a JPEG', jpegBase64(1280, 720)],
      ['exactly 10 MB', paddedPngBase64(TEN_MB)],
    ])('accepts %s', (_case, image) => {
      expectAccepted({ image });
    });

    it.each([
      ['a data: URL', `data:image/png;base64,${pngBase64(300, 300)}`, 'image: must be bare base64 without a "data:" prefix'],
      ['an ftp URL', 'ftp://cdn.example.com/a.png', /^image: must be an http or https URL/],
      ['an empty string', '', 'image: must not be empty'],
      ['broken base64', 'iVBO Rw0K', /^image: must be an http\(s\) URL or valid bare base64/],
      ['a GIF', gifBase64(400, 400), 'image: must be a JPEG or PNG image (got gif)'],
      ['a PNG 299 px wide', pngBase64(299, 400), 'image: must be at least 300 px wide and 300 px high (got 299x400)'],
      ['a JPEG 299 px high', jpegBase64(640, 299), 'image: must be at least 300 px wide and 300 px high (got 640x299)'],
      ['a 751x300 PNG', pngBase64(751, 300), 'image: must have an aspect ratio (width:height) between 1:2.5 and 2.5:1 (got 751x300)'],
      ['a 300x751 JPEG', jpegBase64(300, 751), 'image: must have an aspect ratio (width:height) between 1:2.5 and 2.5:1 (got 300x751)'],
      ['over 10 MB', paddedPngBase64(TEN_MB + 1), /^image: must be at most 10 MB/],
    ])('refuses %s', (_case, image, message) => {
      expectRefused({ image }, 'image', message);
    });

    it('is required, since image_tail alone is not supported', () => {
      expectRefused({ prompt: 'a fox' }, 'image', 'image: is required (image_tail alone is not supported)');
      expectRefused({ image_tail: LAST }, 'image_tail', 'image_tail: needs image: a last frame alone is not supported');
    });
  });

  describe('image_tail', () => {
    it.each([
      ['a URL', LAST],
      ['a 751x300 PNG, since Kling documents no aspect ratio rule for the last frame', pngBase64(751, 300)],
      ['a 300x1000 JPEG', jpegBase64(300, 1000)],
    ])('accepts %s', (_case, imageTail) => {
      expectAccepted(withImage({ image_tail: imageTail }));
    });

    it.each([
      ['a PNG 299 px high', pngBase64(800, 299), 'image_tail: must be at least 300 px wide and 300 px high (got 800x299)'],
      ['a data: URL', `data:image/jpeg;base64,${jpegBase64(400, 400)}`, 'image_tail: must be bare base64 without a "data:" prefix'],
      ['over 10 MB', paddedPngBase64(TEN_MB + 1), /^image_tail: must be at most 10 MB/],
      ['a GIF', gifBase64(400, 400), 'image_tail: must be a JPEG or PNG image (got gif)'],
    ])('refuses %s', (_case, imageTail, message) => {
      expectRefused(withImage({ image_tail: imageTail }), 'image_tail', message);
    });

    it('refuses image_tail with multi_shot', () => {
      expectRefused(
        withImage({ image_tail: LAST, prompt: 'a', multi_shot: true, shot_type: 'intelligence' }),
        'image_tail',
        'image_tail: is not supported with multi_shot: true',
      );
    });

    it('on kling-v2-6 needs pro mode and no sound', () => {
      const tail = (fields: Record<string, unknown>) => withImage({ image_tail: LAST, model_name: 'kling-v2-6', ...fields });
      const message = 'image_tail: on kling-v2-6 needs mode "pro" and sound "off" (first and last frame is 1080p and silent only)';
      expectAccepted(tail({ mode: 'pro' }));
      expectAccepted(tail({ mode: 'pro', sound: 'off' }));
      expectRefused(tail({}), 'image_tail', message);
      expectRefused(tail({ mode: 'pro', sound: 'on' }), 'image_tail', message);
    });

    it('on kling-v2-5-turbo needs pro mode', () => {
      expectAccepted(withImage({ image_tail: LAST, model_name: 'kling-v2-5-turbo', mode: 'pro' }));
      expectRefused(
        withImage({ image_tail: LAST, model_name: 'kling-v2-5-turbo', mode: 'std' }),
        'image_tail',
        'image_tail: on kling-v2-5-turbo needs mode "pro" (first and last frame is 1080p only)',
      );
    });

    it('is accepted in std mode on kling-v3', () => {
      expectAccepted(withImage({ image_tail: LAST, mode: 'std' }));
    });
  });

  describe('mutually exclusive controls', () => {
    const EXCLUSIVE = 'image_tail, static_mask/dynamic_masks and camera_control are mutually exclusive';
    const camera = { type: 'down_back' };

    it.each([
      ['static_mask', { image_tail: LAST, static_mask: MASK }, 'image_tail'],
      ['dynamic_masks', { image_tail: LAST, dynamic_masks: [brush()] }, 'image_tail'],
      ['camera_control', { image_tail: LAST, camera_control: camera }, 'image_tail'],
      ['camera_control', { static_mask: MASK, camera_control: camera }, 'static_mask'],
      ['camera_control', { dynamic_masks: [brush()], camera_control: camera }, 'dynamic_masks'],
    ])('refuses %s together with %p', (field, fields, first) => {
      expectRefused(withImage(fields), field, `${field}: cannot be combined with ${first}: ${EXCLUSIVE}`);
    });

    it.each([
      ['both masks', { static_mask: MASK, dynamic_masks: [brush()] }],
      ['camera_control', { camera_control: camera }],
      ['image_tail', { image_tail: LAST }],
      ['an empty dynamic_masks list with camera_control', { dynamic_masks: [], camera_control: camera }],
    ])('accepts %s alone with image', (_case, fields) => {
      expectAccepted(withImage(fields));
    });
  });

  describe('static_mask and dynamic_masks', () => {
    it('checks masks as images', () => {
      expectAccepted(
        withImage({ static_mask: pngBase64(300, 300), dynamic_masks: [{ mask: jpegBase64(300, 300), trajectories: points(2) }] }),
      );
      expectRefused(
        withImage({ static_mask: `data:image/png;base64,AAAA` }),
        'static_mask',
        'static_mask: must be bare base64 without a "data:" prefix',
      );
      expectRefused(
        withImage({ dynamic_masks: [{ mask: pngBase64(299, 300), trajectories: points(2) }] }),
        'dynamic_masks[0].mask',
        'dynamic_masks[0].mask: must be at least 300 px wide and 300 px high (got 299x300)',
      );
    });

    it('accepts 6 masks and refuses 7', () => {
      expectAccepted(withImage({ dynamic_masks: Array.from({ length: 6 }, () => brush()) }));
      expectRefused(
        withImage({ dynamic_masks: Array.from({ length: 7 }, () => brush()) }),
        'dynamic_masks',
        'dynamic_masks: must have at most 6 masks',
      );
    });

    it('accepts 2 and 77 points for a 5 s video and refuses 1 and 78', () => {
      expectAccepted(withImage({ dynamic_masks: [brush(2)] }));
      expectAccepted(withImage({ dynamic_masks: [brush(77)], duration: '5' }));
      expectRefused(
        withImage({ dynamic_masks: [brush(1)] }),
        'dynamic_masks[0].trajectories',
        'dynamic_masks[0].trajectories: must have at least 2 points',
      );
      expectRefused(
        withImage({ dynamic_masks: [brush(2), brush(78)] }),
        'dynamic_masks[1].trajectories',
        'dynamic_masks[1].trajectories: must have at most 77 points for a 5 s video',
      );
    });

    it('does not bound the points of a 10 s video, for which Kling documents no bound', () => {
      expectAccepted(withImage({ dynamic_masks: [brush(78)], duration: '10' }));
    });

    it('refuses a point that is not a pair of integers', () => {
      expectRefused(
        withImage({
          dynamic_masks: [
            {
              mask: MASK,
              trajectories: [
                { x: 1, y: 1 },
                { x: 1.5, y: 2 },
              ],
            },
          ],
        }),
        'dynamic_masks[0].trajectories[1].x',
        'dynamic_masks[0].trajectories[1].x: must be an integer',
      );
      expectRefused(
        withImage({ dynamic_masks: [{ mask: MASK, trajectories: [{ x: 1, y: 1 }, { x: 2 }] }] }),
        'dynamic_masks[0].trajectories[1].y',
        'dynamic_masks[0].trajectories[1].y: is required',
      );
    });

    it('refuses a dynamic mask without its mask', () => {
      expectRefused(
        withImage({ dynamic_masks: [{ trajectories: points(2) }] }),
        'dynamic_masks[0].mask',
        'dynamic_masks[0].mask: is required',
      );
    });
  });

  describe('voice_list and element_list', () => {
    const voices = (count: number) => Array.from({ length: count }, (_, i) => ({ voice_id: `voice-${i}` }));

    it('accepts 2 voices with sound on, and refuses 3', () => {
      expectAccepted(withImage({ voice_list: voices(2), sound: 'on' }));
      expectRefused(withImage({ voice_list: voices(3), sound: 'on' }), 'voice_list', 'voice_list: must have at most 2 voices');
    });

    it.each([[{}], [{ sound: 'off' }]])('refuses voices without sound on (%p)', (fields) => {
      expectRefused(withImage({ voice_list: voices(1), ...fields }), 'voice_list', 'voice_list: needs sound "on"');
    });

    it('refuses voices on a model before V2.6', () => {
      expectRefused(
        withImage({ voice_list: voices(1), model_name: 'kling-v2-5-turbo' }),
        'voice_list',
        'voice_list: needs a Kling V2.6 or later model (not kling-v2-5-turbo)',
      );
    });

    it('accepts an empty voice_list without sound', () => {
      expectAccepted(withImage({ voice_list: [] }));
    });

    it('refuses an empty voice_id and unknown keys in a voice', () => {
      expectRefused(
        withImage({ voice_list: [{ voice_id: '' }], sound: 'on' }),
        'voice_list[0].voice_id',
        'voice_list[0].voice_id: must not be empty',
      );
      expectRefused(
        withImage({ voice_list: [{ voice_id: 'v', name: 'x' }], sound: 'on' }),
        'voice_list[0].name',
        'voice_list[0].name: unknown field',
      );
    });

    it('accepts 3 elements and refuses 4', () => {
      const elements = (count: number) => Array.from({ length: count }, (_, i) => ({ element_id: i + 1 }));
      expectAccepted(withImage({ element_list: elements(3) }));
      expectRefused(withImage({ element_list: elements(4) }), 'element_list', 'element_list: must have at most 3 elements');
    });

    it('refuses a non-positive element_id', () => {
      expectRefused(
        withImage({ element_list: [{ element_id: 0 }] }),
        'element_list[0].element_id',
        'element_list[0].element_id: must be a positive integer',
      );
    });

    it('refuses voices together with elements', () => {
      expectRefused(
        withImage({ voice_list: voices(1), sound: 'on', element_list: [{ element_id: 1 }] }),
        'element_list',
        'element_list: cannot be combined with voice_list',
      );
    });
  });

  describe('prompt and the fields shared with text2video', () => {
    it('accepts no prompt, an empty one and 2500 characters, and refuses 2501', () => {
      expectAccepted(withImage({}));
      expectAccepted(withImage({ prompt: '' }));
      expectAccepted(withImage({ prompt: 'p'.repeat(2500) }));
      expectRefused(withImage({ prompt: 'p'.repeat(2501) }), 'prompt', 'prompt: must be at most 2500 characters');
    });

    it('needs a prompt for an intelligence multi-shot video', () => {
      expectRefused(
        withImage({ multi_shot: true, shot_type: 'intelligence' }),
        'prompt',
        'prompt: is required when shot_type is "intelligence"',
      );
      expectRefused(
        withImage({ prompt: ' ', multi_shot: true, shot_type: 'intelligence' }),
        'prompt',
        'prompt: must not be blank when shot_type is "intelligence"',
      );
    });

    it('applies the model-keyed rules: duration, 4k, sound and multi_shot', () => {
      expectAccepted(withImage({ duration: '15', mode: '4k', sound: 'on' }));
      expectRefused(
        withImage({ model_name: 'kling-v2-1', duration: '15' }),
        'duration',
        'duration: must be "5" or "10" on kling-v2-1 (only Kling 3.0 models take "3" to "15")',
      );
      expectRefused(
        withImage({ model_name: 'kling-v2-1', mode: '4k' }),
        'mode',
        'mode: "4k" needs a Kling 3.0 model (kling-v2-1 takes "std" or "pro")',
      );
      expectRefused(
        withImage({ model_name: 'kling-v2-1', sound: 'on' }),
        'sound',
        'sound: "on" needs a Kling V2.6 or later model (not kling-v2-1)',
      );
      expectRefused(
        withImage({ model_name: 'kling-v2-6', prompt: 'a', multi_shot: true, shot_type: 'intelligence' }),
        'multi_shot',
        'multi_shot: needs a Kling 3.0 model (not kling-v2-6)',
      );
    });

    it('accepts aspect_ratio, which clients written for Kling send, with the text2video values', () => {
      expectAccepted(withImage({ aspect_ratio: '9:16' }));
      expectRefused(withImage({ aspect_ratio: '4:3' }), 'aspect_ratio', 'aspect_ratio: must be one of 16:9, 9:16, 1:1');
    });

    it('applies the camera_control rules', () => {
      expectRefused(
        withImage({ camera_control: { type: 'simple', config: { zoom: 1, roll: 1 } } }),
        'camera_control.config',
        /^camera_control\.config: must have exactly one of horizontal, vertical, pan, tilt, roll, zoom non-zero/,
      );
    });

    it('validates callback_url and external_task_id as image generation does', () => {
      expect(expectAccepted(withImage({ callback_url: 'HTTP://Hooks.Example.com:80/k' })).callback_url).toBe('http://hooks.example.com/k');
      expectRefused(
        withImage({ callback_url: 'https://u:p@hooks.example.com/' }),
        'callback_url',
        'callback_url: must not contain credentials (user:password@)',
      );
      expectRefused(
        withImage({ external_task_id: 'x'.repeat(257) }),
        'external_task_id',
        'external_task_id: must be at most 256 characters',
      );
    });
  });

  describe('upstream defaults', () => {
    it("are Kling's documented image2video defaults, without aspect_ratio", () => {
      expect(IMAGE_TO_VIDEO_UPSTREAM_DEFAULTS).toEqual({ multi_shot: false, sound: 'off', cfg_scale: 0.5, mode: 'std', duration: '5' });
    });

    it('are each a value the schema accepts, and are not applied to the validated request', () => {
      expectAccepted(withImage(IMAGE_TO_VIDEO_UPSTREAM_DEFAULTS));
      const value = expectAccepted(withImage({}));
      for (const field of Object.keys(IMAGE_TO_VIDEO_UPSTREAM_DEFAULTS)) expect([field, field in value]).toEqual([field, false]);
    });
  });

  describe('schema', () => {
    it('converts to JSON Schema with a description on every field', () => {
      const jsonSchema = z.toJSONSchema(buildImageToVideoRequest(MODELS), { io: 'input' }) as {
        properties: Record<string, { description?: string }>;
      };
      expect(Object.keys(jsonSchema.properties)).toHaveLength(21);
      for (const [name, property] of Object.entries(jsonSchema.properties)) {
        expect([name, typeof property.description]).toEqual([name, 'string']);
      }
    });
  });
});
