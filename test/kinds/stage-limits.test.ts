import { loadConfig } from '../../src/config';
import { KINDS } from '../../src/kinds/registry';
import { stageLimitsByKind } from '../../src/kinds/stage-limits';
import { createLogger } from '../../src/logger';
import { startService } from '../../src/service';

const HOUR = 3_600_000;

/** The limits the service derives from `env`, as service.ts does at start. */
function limitsFrom(env: Record<string, string>) {
  const c = loadConfig(env);
  const limits = stageLimitsByKind(
    KINDS,
    { queueMs: c.QUEUE_TIMEOUT_MS, startMs: c.START_TIMEOUT_MS, totalMs: c.TOTAL_TIMEOUT_MS },
    c.stageLimitOverrides,
  );
  return Object.fromEntries(limits);
}

describe('stageLimitsByKind', () => {
  it('gives each kind its own limits when nothing is set: videos wait longer to start and may take longer in all than images', () => {
    expect(limitsFrom({})).toEqual({
      'image-generation': { queueMs: HOUR, startMs: HOUR / 2, totalMs: 3 * HOUR },
      'text-to-video': { queueMs: HOUR, startMs: HOUR, totalMs: 6 * HOUR },
      'image-to-video': { queueMs: HOUR, startMs: HOUR, totalMs: 6 * HOUR },
    });
  });

  it('applies QUEUE/START/TOTAL_TIMEOUT_MS to every kind, and leaves the stages not set to each kind', () => {
    expect(limitsFrom({ START_TIMEOUT_MS: '5000' })).toEqual({
      'image-generation': { queueMs: HOUR, startMs: 5000, totalMs: 3 * HOUR },
      'text-to-video': { queueMs: HOUR, startMs: 5000, totalMs: 6 * HOUR },
      'image-to-video': { queueMs: HOUR, startMs: 5000, totalMs: 6 * HOUR },
    });
  });

  it('applies <STAGE>_TIMEOUT_MS_<KIND> to that kind alone, over the setting for every kind', () => {
    const limits = limitsFrom({
      TOTAL_TIMEOUT_MS: '9000',
      TOTAL_TIMEOUT_MS_TEXT_TO_VIDEO: '7000',
      START_TIMEOUT_MS_IMAGE_TO_VIDEO: '4000',
      QUEUE_TIMEOUT_MS_IMAGE_GENERATION: '3000',
    });
    expect(limits).toEqual({
      'image-generation': { queueMs: 3000, startMs: HOUR / 2, totalMs: 9000 },
      'text-to-video': { queueMs: HOUR, startMs: HOUR, totalMs: 7000 },
      'image-to-video': { queueMs: HOUR, startMs: 4000, totalMs: 9000 },
    });
  });

  it.each([
    [{ START_TIMEOUT_MS_FOO: '5000' }, 'START_TIMEOUT_MS_FOO'],
    // A kind spelt as Kling's path instead of its name.
    [{ TOTAL_TIMEOUT_MS_TEXT2VIDEO: '5000' }, 'TOTAL_TIMEOUT_MS_TEXT2VIDEO'],
  ])('refuses %j, naming %s and the kinds there are', (env, name) => {
    expect(() => limitsFrom(env)).toThrow(
      new RegExp(`^Invalid configuration:\\n  ${name}: names no task kind \\(kinds: IMAGE_GENERATION, TEXT_TO_VIDEO, IMAGE_TO_VIDEO\\)$`),
    );
  });

  it('fails the start of a process so configured, naming the variable', async () => {
    // Nothing listens on port 1: the check comes before any connection is opened.
    const config = loadConfig({
      ROLE: 'worker',
      START_TIMEOUT_MS_FOO: '5000',
      DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/none',
      REDIS_URL: 'redis://127.0.0.1:1',
    });
    await expect(startService(config, createLogger('silent'), 'http://127.0.0.1:1')).rejects.toThrow(
      /START_TIMEOUT_MS_FOO: names no task kind/,
    );
  });

  it('refuses a per-kind limit that is not a positive whole number of milliseconds, naming it', () => {
    expect(() => loadConfig({ TOTAL_TIMEOUT_MS_TEXT_TO_VIDEO: '10m' })).toThrow(/TOTAL_TIMEOUT_MS_TEXT_TO_VIDEO: must be a whole number/);
    expect(() => loadConfig({ QUEUE_TIMEOUT_MS_IMAGE_TO_VIDEO: '0' })).toThrow(/QUEUE_TIMEOUT_MS_IMAGE_TO_VIDEO: must be a whole number/);
  });
});
