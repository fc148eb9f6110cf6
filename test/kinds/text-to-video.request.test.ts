import { z } from 'zod';
import {
  buildTextToVideoRequest,
  TEXT_TO_VIDEO_UPSTREAM_DEFAULTS,
  validateTextToVideoRequest,
} from '../../src/kinds/text-to-video/request';
import { validationExpectations } from '../helpers/validation';

// kling-v2-1 is image2video-only; 'proxy-video' stands for a name outside Kling's pattern, which
// gets no model-keyed rule.
const MODELS = ['kling-v3', 'kling-v2-6', 'kling-v2-5-turbo', 'kling-v2-1', 'kling-v1', 'proxy-video'] as const;

const validate = (body: unknown) => validateTextToVideoRequest(body, MODELS);
const { expectAccepted, expectRefused } = validationExpectations(validate);

const withPrompt = (fields: Record<string, unknown>) => ({ prompt: 'a red fox in the snow', ...fields });
const shots = (...durations: string[]) => durations.map((duration, i) => ({ index: i + 1, prompt: `shot ${i + 1}`, duration }));

describe('validateTextToVideoRequest', () => {
  describe('body', () => {
    it('accepts a minimal body, fills model_name with the first configured model and no other default', () => {
      expect(validate({ prompt: 'a fox' })).toEqual({ ok: true, value: { model_name: 'kling-v3', prompt: 'a fox' } });
    });

    it('forwards every documented field unchanged', () => {
      const body = {
        model_name: 'kling-v3',
        prompt: 'a fox',
        multi_shot: true,
        shot_type: 'customize',
        multi_prompt: shots('4', '6'),
        negative_prompt: 'blurry',
        cfg_scale: 0.7,
        mode: '4k',
        sound: 'on',
        camera_control: { type: 'simple', config: { horizontal: 0, vertical: 0, pan: 0, tilt: 0, roll: 0, zoom: -3.5 } },
        aspect_ratio: '9:16',
        duration: '10',
        watermark_info: { enabled: true },
        callback_url: 'https://hooks.example.com/kling',
        external_task_id: 'order-42',
      };
      expect(validate(body)).toEqual({ ok: true, value: body });
    });

    it.each([[[]], ['prompt'], [42], [null], [undefined]])('refuses %p as a body that is not a JSON object', (body) => {
      expectRefused(body, 'body', 'body: must be a JSON object');
    });

    it.each([['seed'], ['image'], ['voice_list'], ['element_list'], ['model']])(
      'refuses the field %s, which text2video does not have',
      (field) => {
        expectRefused(withPrompt({ [field]: 'x' }), field, `${field}: unknown field`);
      },
    );

    it('reports a misspelt field name rather than the missing field it was meant to be', () => {
      expectRefused({ promt: 'a fox' }, 'promt', 'promt: unknown field');
    });

    it('reports only the first violation, in field order', () => {
      expect(validate({ prompt: 5, mode: 'x', duration: 9 })).toEqual({ ok: false, field: 'prompt', message: 'prompt: must be a string' });
    });

    it('refuses null for an optional field instead of treating it as absent', () => {
      expectRefused(withPrompt({ negative_prompt: null }), 'negative_prompt', /^negative_prompt: must be a string, not null/);
    });

    it.each([
      ['prompt', { prompt: 'a\u0000fox' }],
      ['negative_prompt', withPrompt({ negative_prompt: '\u0000' })],
      [
        'multi_prompt.0.prompt',
        withPrompt({ multi_shot: true, shot_type: 'customize', multi_prompt: [{ index: 1, prompt: 'a\u0000', duration: '5' }] }),
      ],
    ])('refuses the NUL character in %s', (field, body) => {
      expectRefused(body, field, `${field}: must not contain the NUL character (\\u0000)`);
    });

    it('returns a result instead of throwing for junk bodies and hostile getters', () => {
      let deep: unknown = 'bottom';
      for (let i = 0; i < 10_000; i++) deep = [deep, { deep }];
      for (const body of [
        { prompt: deep },
        withPrompt({ multi_prompt: [deep] }),
        withPrompt({ camera_control: deep }),
        Object.create(null),
      ]) {
        const result = validate(body);
        expect(result.ok).toBe(false);
        if (!result.ok) expect(result.message.length).toBeLessThan(300);
      }
      const hostile = Object.defineProperty({}, 'prompt', {
        enumerable: true,
        get() {
          throw new Error('boom');
        },
      });
      expect(validate(hostile)).toEqual({ ok: false, field: 'body', message: 'body: could not be validated' });
    });
  });

  describe('model_name', () => {
    it.each([['kling-v2-6'], ['kling-v1'], ['proxy-video']])('accepts the configured model %s', (model) => {
      expect(expectAccepted(withPrompt({ model_name: model })).model_name).toBe(model);
    });

    it('refuses a model that is not configured, listing the ones text2video takes', () => {
      expectRefused(
        withPrompt({ model_name: 'kling-v9' }),
        'model_name',
        'model_name: must be one of: kling-v3, kling-v2-6, kling-v2-5-turbo, kling-v1, proxy-video',
      );
    });

    it('refuses a configured image2video-only model, saying so', () => {
      expectRefused(
        withPrompt({ model_name: 'kling-v2-1' }),
        'model_name',
        'model_name: kling-v2-1 is an image2video model; text2video takes: kling-v3, kling-v2-6, kling-v2-5-turbo, kling-v1, proxy-video',
      );
    });

    it('refuses a model_name that is not a string', () => {
      expectRefused(withPrompt({ model_name: 3 }), 'model_name', /^model_name: must be a string, one of/);
    });

    it('defaults to the first configured model that text2video takes', () => {
      expect(validateTextToVideoRequest({ prompt: 'a' }, ['kling-v1-5', 'kling-v2-6', 'kling-v3'])).toEqual({
        ok: true,
        value: { model_name: 'kling-v2-6', prompt: 'a' },
      });
    });

    it('refuses to build a schema without a model text2video takes', () => {
      expect(() => buildTextToVideoRequest([])).toThrow(/at least one model/);
      expect(() => buildTextToVideoRequest(['kling-v2-1', 'kling-v1-5'])).toThrow(/must support text2video/);
    });
  });

  describe('prompt', () => {
    it('accepts 2500 characters and refuses 2501', () => {
      expectAccepted({ prompt: 'p'.repeat(2500) });
      expectRefused({ prompt: 'p'.repeat(2501) }, 'prompt', 'prompt: must be at most 2500 characters');
    });

    it('refuses a missing prompt', () => {
      expectRefused({}, 'prompt', 'prompt: is required');
    });

    it.each([[''], ['  \n\t']])('refuses the blank prompt %p', (prompt) => {
      expectRefused({ prompt }, 'prompt', 'prompt: must not be blank');
    });

    it('refuses a prompt that is not a string', () => {
      expectRefused({ prompt: ['a'] }, 'prompt', 'prompt: must be a string');
    });

    it('may be left out or empty when multi_prompt gives the shots (shot_type customize)', () => {
      expectAccepted({ multi_shot: true, shot_type: 'customize', multi_prompt: shots('5') });
      expectAccepted({ prompt: '', multi_shot: true, shot_type: 'customize', multi_prompt: shots('5') });
    });

    it('is required for an intelligence multi-shot video, which is cut from the prompt', () => {
      expectRefused({ multi_shot: true, shot_type: 'intelligence' }, 'prompt', 'prompt: is required');
      expectAccepted(withPrompt({ multi_shot: true, shot_type: 'intelligence' }));
    });
  });

  describe('negative_prompt', () => {
    it('accepts 2500 characters and refuses 2501', () => {
      expectAccepted(withPrompt({ negative_prompt: 'n'.repeat(2500) }));
      expectRefused(
        withPrompt({ negative_prompt: 'n'.repeat(2501) }),
        'negative_prompt',
        'negative_prompt: must be at most 2500 characters',
      );
    });
  });

  describe('cfg_scale', () => {
    it.each([[0], [0.5], [1]])('accepts %p', (cfgScale) => {
      expectAccepted(withPrompt({ cfg_scale: cfgScale }));
    });

    it.each([[-0.01], [1.01]])('refuses %p as outside [0, 1]', (cfgScale) => {
      expectRefused(withPrompt({ cfg_scale: cfgScale }), 'cfg_scale', 'cfg_scale: must be between 0 and 1');
    });

    it('refuses a numeric string', () => {
      expectRefused(withPrompt({ cfg_scale: '0.5' }), 'cfg_scale', 'cfg_scale: must be a number');
    });

    it('is accepted on a Kling v2.x model, which does not use it', () => {
      expectAccepted(withPrompt({ model_name: 'kling-v2-6', cfg_scale: 0.3 }));
    });
  });

  describe('mode', () => {
    it.each([
      ['std', 'kling-v1'],
      ['pro', 'kling-v2-6'],
      ['4k', 'kling-v3'],
      ['4k', 'proxy-video'],
    ])('accepts %s on %s', (mode, model) => {
      expectAccepted(withPrompt({ mode, model_name: model }));
    });

    it.each([['kling-v2-6'], ['kling-v1']])('refuses 4k on %s, which is not a Kling 3.0 model', (model) => {
      expectRefused(
        withPrompt({ mode: '4k', model_name: model }),
        'mode',
        `mode: "4k" needs a Kling 3.0 model (${model} takes "std" or "pro")`,
      );
    });

    it.each([['standard'], ['PRO'], [1]])('refuses the mode %p', (mode) => {
      expectRefused(withPrompt({ mode }), 'mode', 'mode: must be "std", "pro" or "4k"');
    });
  });

  describe('sound', () => {
    it.each([
      ['on', 'kling-v3', 'std'],
      ['on', 'kling-v2-6', 'pro'],
      ['on', 'proxy-video', 'std'],
      ['off', 'kling-v1', 'std'],
    ])('accepts %s on %s in %s mode', (sound, model, mode) => {
      expectAccepted(withPrompt({ sound, model_name: model, mode }));
    });

    it.each([['kling-v2-5-turbo'], ['kling-v1']])('refuses on with %s, before V2.6', (model) => {
      expectRefused(
        withPrompt({ sound: 'on', model_name: model, mode: 'pro' }),
        'sound',
        `sound: "on" needs a Kling V2.6 or later model (not ${model})`,
      );
    });

    it.each([[{ mode: 'std' }], [{}]])('refuses on with kling-v2-6 outside pro mode (%p), whose 720p is silent', (fields) => {
      expectRefused(
        withPrompt({ sound: 'on', model_name: 'kling-v2-6', ...fields }),
        'sound',
        'sound: "on" on kling-v2-6 needs mode "pro" (its std mode, 720p, is silent only)',
      );
    });

    it.each([['yes'], [true]])('refuses %p', (sound) => {
      expectRefused(withPrompt({ sound }), 'sound', 'sound: must be "on" or "off"');
    });
  });

  describe('aspect_ratio', () => {
    it.each([['16:9'], ['9:16'], ['1:1']])('accepts %s', (aspectRatio) => {
      expectAccepted(withPrompt({ aspect_ratio: aspectRatio }));
    });

    it.each([['4:3'], ['21:9'], ['16/9']])('refuses %s', (aspectRatio) => {
      expectRefused(withPrompt({ aspect_ratio: aspectRatio }), 'aspect_ratio', 'aspect_ratio: must be one of 16:9, 9:16, 1:1');
    });
  });

  describe('duration', () => {
    it.each([
      ['5', 'kling-v1'],
      ['10', 'kling-v2-6'],
      ['3', 'kling-v3'],
      ['15', 'kling-v3'],
      ['7', 'proxy-video'],
    ])('accepts %s on %s', (duration, model) => {
      expectAccepted(withPrompt({ duration, model_name: model }));
    });

    it.each([['3'], ['7'], ['15']])('refuses %s on kling-v2-6, which takes 5 or 10 only', (duration) => {
      expectRefused(
        withPrompt({ duration, model_name: 'kling-v2-6' }),
        'duration',
        'duration: must be "5" or "10" on kling-v2-6 (only Kling 3.0 models take "3" to "15")',
      );
    });

    it.each([['2'], ['16'], ['05'], [' 5'], [5]])('refuses %p on every model', (duration) => {
      expectRefused(withPrompt({ duration }), 'duration', /^duration: must be a string of whole seconds: "5" or "10", or "3" to "15"/);
    });
  });

  describe('camera_control', () => {
    it.each([['down_back'], ['forward_up'], ['right_turn_forward'], ['left_turn_forward']])(
      'accepts the preset %s without a config',
      (type) => {
        expectAccepted(withPrompt({ camera_control: { type } }));
        expectAccepted(withPrompt({ camera_control: { type, config: null } }));
      },
    );

    it('refuses a config with a preset type', () => {
      expectRefused(
        withPrompt({ camera_control: { type: 'forward_up', config: { zoom: 2 } } }),
        'camera_control.config',
        'camera_control.config: must be left out for type "forward_up"',
      );
    });

    it.each([['horizontal'], ['vertical'], ['pan'], ['tilt'], ['roll'], ['zoom']])(
      'accepts simple moving %s alone, at -10 and 10',
      (axis) => {
        expectAccepted(withPrompt({ camera_control: { type: 'simple', config: { [axis]: -10 } } }));
        expectAccepted(
          withPrompt({
            camera_control: { type: 'simple', config: { horizontal: 0, vertical: 0, pan: 0, tilt: 0, roll: 0, zoom: 0, [axis]: 10 } },
          }),
        );
      },
    );

    it.each([[10.01], [-10.01]])('refuses a movement of %p', (value) => {
      expectRefused(
        withPrompt({ camera_control: { type: 'simple', config: { roll: value } } }),
        'camera_control.config.roll',
        'camera_control.config.roll: must be between -10 and 10',
      );
    });

    it('refuses simple with two movements', () => {
      expectRefused(
        withPrompt({ camera_control: { type: 'simple', config: { pan: 1, zoom: 0.5 } } }),
        'camera_control.config',
        'camera_control.config: must have exactly one of horizontal, vertical, pan, tilt, roll, zoom non-zero for type "simple" (got pan, zoom)',
      );
    });

    it.each([[{}], [{ zoom: 0, pan: -0 }]])('refuses simple without any movement (%p)', (config) => {
      expectRefused(
        withPrompt({ camera_control: { type: 'simple', config } }),
        'camera_control.config',
        'camera_control.config: must have exactly one of horizontal, vertical, pan, tilt, roll, zoom non-zero for type "simple" (got none)',
      );
    });

    it.each([[{ type: 'simple' }], [{ type: 'simple', config: null }]])('refuses simple without a config (%p)', (cameraControl) => {
      expectRefused(
        withPrompt({ camera_control: cameraControl }),
        'camera_control.config',
        'camera_control.config: is required for type "simple"',
      );
    });

    it('refuses a missing or unknown type', () => {
      expectRefused(withPrompt({ camera_control: { config: { zoom: 1 } } }), 'camera_control.type', 'camera_control.type: is required');
      expectRefused(
        withPrompt({ camera_control: { type: 'orbit' } }),
        'camera_control.type',
        /^camera_control\.type: must be one of simple, down_back/,
      );
    });

    it('refuses unknown keys inside camera_control and its config', () => {
      expectRefused(
        withPrompt({ camera_control: { type: 'simple', speed: 1 } }),
        'camera_control.speed',
        'camera_control.speed: unknown field',
      );
      expectRefused(
        withPrompt({ camera_control: { type: 'simple', config: { zoom: 1, dolly: 2 } } }),
        'camera_control.config.dolly',
        'camera_control.config.dolly: unknown field',
      );
    });

    it('refuses a camera_control that is not an object', () => {
      expectRefused(withPrompt({ camera_control: 'simple' }), 'camera_control', /^camera_control: must be an object/);
    });
  });

  describe('multi-shot', () => {
    const customize = (fields: Record<string, unknown>) => ({ multi_shot: true, shot_type: 'customize', ...fields });

    it('accepts 1 and 6 shots adding up to the task duration', () => {
      expectAccepted(customize({ multi_prompt: shots('5') }));
      expectAccepted(customize({ duration: '15', multi_prompt: shots('1', '2', '3', '4', '4', '1') }));
    });

    it.each([[[]], [shots('1', '1', '1', '1', '1', '1', '4')]])('refuses %p shots', (multiPrompt) => {
      expectRefused(customize({ duration: '10', multi_prompt: multiPrompt }), 'multi_prompt', 'multi_prompt: must have 1 to 6 shots');
    });

    it('refuses shots that do not add up to the task duration, the default 5 s included', () => {
      expectRefused(
        customize({ multi_prompt: shots('2', '2') }),
        'multi_prompt',
        'multi_prompt: shot durations must add up to the task duration (5 s; they add up to 4 s)',
      );
      expectRefused(
        customize({ duration: '10', multi_prompt: shots('5', '4') }),
        'multi_prompt',
        'multi_prompt: shot durations must add up to the task duration (10 s; they add up to 9 s)',
      );
    });

    it('refuses a shot longer than the task', () => {
      expectRefused(
        customize({ duration: '5', multi_prompt: shots('6') }),
        'multi_prompt[0].duration',
        'multi_prompt[0].duration: must be at most the task duration (5 s)',
      );
    });

    it.each([['0'], ['1.5'], [''], [3]])('refuses the shot duration %p', (duration) => {
      expectRefused(
        customize({ multi_prompt: [{ index: 1, prompt: 'a', duration }] }),
        'multi_prompt[0].duration',
        /^multi_prompt\[0\]\.duration: must be/,
      );
    });

    it('accepts a shot prompt of 512 characters and refuses 513 or a blank one', () => {
      const one = (prompt: string) => customize({ multi_prompt: [{ index: 1, prompt, duration: '5' }] });
      expectAccepted(one('s'.repeat(512)));
      expectRefused(one('s'.repeat(513)), 'multi_prompt[0].prompt', 'multi_prompt[0].prompt: must be at most 512 characters');
      expectRefused(one(' '), 'multi_prompt[0].prompt', 'multi_prompt[0].prompt: must not be blank');
    });

    it('refuses a shot without an index, or with unknown keys', () => {
      expectRefused(
        customize({ multi_prompt: [{ prompt: 'a', duration: '5' }] }),
        'multi_prompt[0].index',
        'multi_prompt[0].index: is required',
      );
      expectRefused(
        customize({ multi_prompt: [{ index: 1, prompt: 'a', duration: '5', camera: 'x' }] }),
        'multi_prompt[0].camera',
        'multi_prompt[0].camera: unknown field',
      );
    });

    it.each([[undefined], [false]])('refuses shot_type and multi_prompt when multi_shot is %p', (multiShot) => {
      expectRefused(
        withPrompt({ multi_shot: multiShot, shot_type: 'intelligence' }),
        'shot_type',
        'shot_type: needs multi_shot: true (Kling ignores it otherwise)',
      );
      expectRefused(
        withPrompt({ multi_shot: multiShot, multi_prompt: shots('5') }),
        'multi_prompt',
        'multi_prompt: needs multi_shot: true (Kling ignores it otherwise)',
      );
    });

    it('refuses multi_shot without shot_type, and customize without multi_prompt', () => {
      expectRefused(withPrompt({ multi_shot: true }), 'shot_type', 'shot_type: is required when multi_shot is true');
      expectRefused(
        withPrompt({ multi_shot: true, shot_type: 'customize' }),
        'multi_prompt',
        'multi_prompt: is required when shot_type is "customize"',
      );
    });

    it('refuses an unknown shot_type', () => {
      expectRefused(withPrompt({ multi_shot: true, shot_type: 'auto' }), 'shot_type', 'shot_type: must be "customize" or "intelligence"');
    });

    it('refuses multi_shot on a model before Kling 3.0, and accepts multi_shot false there', () => {
      expectRefused(
        withPrompt({ model_name: 'kling-v2-6', multi_shot: true, shot_type: 'intelligence' }),
        'multi_shot',
        'multi_shot: needs a Kling 3.0 model (not kling-v2-6)',
      );
      expectAccepted(withPrompt({ model_name: 'kling-v2-6', multi_shot: false }));
    });
  });

  describe('watermark_info, callback_url and external_task_id', () => {
    it('accepts watermark_info and refuses a non-boolean enabled', () => {
      expectAccepted(withPrompt({ watermark_info: { enabled: false } }));
      expectRefused(
        withPrompt({ watermark_info: { enabled: 'yes' } }),
        'watermark_info.enabled',
        'watermark_info.enabled: must be a boolean',
      );
    });

    it('stores callback_url in its normalised form', () => {
      expect(expectAccepted(withPrompt({ callback_url: 'HTTPS://Hooks.Example.COM:443/a b' })).callback_url).toBe(
        'https://hooks.example.com/a%20b',
      );
    });

    it.each([
      ['ftp://hooks.example.com/', /^callback_url: must be an http or https URL/],
      ['https://user:secret@hooks.example.com/', 'callback_url: must not contain credentials (user:password@)'],
      ['', 'callback_url: must be an absolute http(s) URL'],
      [`https://hooks.example.com/${'c'.repeat(2023)}`, 'callback_url: must be at most 2048 characters'],
    ])('refuses the callback_url %p', (callbackUrl, message) => {
      expectRefused(withPrompt({ callback_url: callbackUrl }), 'callback_url', message);
    });

    it('accepts an external_task_id of 1 and 256 characters and refuses 257, empty or control characters', () => {
      expectAccepted(withPrompt({ external_task_id: 'x' }));
      expectAccepted(withPrompt({ external_task_id: 'x'.repeat(256) }));
      expectRefused(
        withPrompt({ external_task_id: 'x'.repeat(257) }),
        'external_task_id',
        'external_task_id: must be at most 256 characters',
      );
      expectRefused(withPrompt({ external_task_id: '' }), 'external_task_id', 'external_task_id: must not be empty');
      expectRefused(withPrompt({ external_task_id: 'a\nb' }), 'external_task_id', 'external_task_id: must not contain control characters');
    });
  });

  describe('upstream defaults', () => {
    it("are Kling's documented text2video defaults", () => {
      expect(TEXT_TO_VIDEO_UPSTREAM_DEFAULTS).toEqual({
        multi_shot: false,
        cfg_scale: 0.5,
        mode: 'std',
        sound: 'off',
        aspect_ratio: '16:9',
        duration: '5',
      });
    });

    it('are each a value the schema accepts', () => {
      expectAccepted(withPrompt(TEXT_TO_VIDEO_UPSTREAM_DEFAULTS));
    });

    it('are not applied to the validated request', () => {
      const value = expectAccepted(withPrompt({}));
      for (const field of Object.keys(TEXT_TO_VIDEO_UPSTREAM_DEFAULTS)) expect([field, field in value]).toEqual([field, false]);
    });
  });

  describe('schema', () => {
    it('converts to JSON Schema with a description on every field', () => {
      const jsonSchema = z.toJSONSchema(buildTextToVideoRequest(MODELS), { io: 'input' }) as {
        properties: Record<string, { description?: string }>;
        additionalProperties: boolean;
      };
      expect(Object.keys(jsonSchema.properties)).toHaveLength(15);
      for (const [name, property] of Object.entries(jsonSchema.properties)) {
        expect([name, typeof property.description]).toEqual([name, 'string']);
      }
      expect(jsonSchema.additionalProperties).toBe(false);
    });
  });
});
