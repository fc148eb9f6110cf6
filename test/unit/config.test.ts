import fs from 'node:fs';
import path from 'node:path';
import { ConfigSchema, KLING_GLOBAL_BASE_URL, loadConfig } from '../../src/config';

describe('configuration', () => {
  it('documents every variable of the schema in .env.example, and nothing else', () => {
    const example = fs.readFileSync(path.join(__dirname, '..', '..', '.env.example'), 'utf8');
    const documented = [...example.matchAll(/^([A-Z0-9_]+)=/gm)].map((m) => m[1]).sort();
    const schemaKeys = Object.keys(ConfigSchema.shape).sort();
    expect(documented).toEqual(schemaKeys);
  });

  it('gives the defaults of CONTRACT.md and uses the simulator when no upstream is configured', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      DATABASE_URL: 'postgresql://postgres:postgres@127.0.0.1:5432/kling_tracker',
      REDIS_URL: 'redis://127.0.0.1:6379',
      PORT: 3000,
      HOST: '127.0.0.1',
      PUBLIC_BASE_URL: 'http://127.0.0.1:3000',
      KLING_MODELS: ['kling-v3'],
      ROLE: 'all',
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: false,
      UPSTREAM_POLL_AFTER_MS: 30000,
      UPSTREAM_CONCURRENCY: 10,
      WEBHOOK_RETRY_SCHEDULE_MS: [0, 5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000],
      useSimulator: true,
    });
    expect(c.KLING_BASE_URL).toBeUndefined();
  });

  it('points a bare credential at Kling itself, and keeps a base URL with a path prefix', () => {
    expect(loadConfig({ KLING_API_KEY: 'k' })).toMatchObject({ KLING_BASE_URL: KLING_GLOBAL_BASE_URL, useSimulator: false });
    expect(loadConfig({ KLING_BASE_URL: 'https://api.powertokens.ai/kling/', KLING_API_KEY: 'k' }).KLING_BASE_URL).toBe(
      'https://api.powertokens.ai/kling',
    );
  });

  it('treats an empty variable as unset and parses lists', () => {
    const c = loadConfig({ KLING_API_KEY: '', KLING_MODELS: 'kling-v3, kling-v2-1', PUBLIC_BASE_URL: 'https://tracker.example.com/' });
    expect(c.useSimulator).toBe(true);
    expect(c.KLING_MODELS).toEqual(['kling-v3', 'kling-v2-1']);
    expect(c.PUBLIC_BASE_URL).toBe('https://tracker.example.com');
  });

  it.each([
    [{ PORT: 'eighty' }, 'PORT'],
    [{ ROLE: 'both' }, 'ROLE'],
    [{ KLING_ACCESS_KEY: 'ak' }, 'KLING_SECRET_KEY'],
    [{ KLING_WEBHOOK_SECRET: 'secret' }, 'KLING_WEBHOOK_SECRET'],
    [{ WEBHOOK_RETRY_SCHEDULE_MS: '0,5s' }, 'WEBHOOK_RETRY_SCHEDULE_MS'],
    [{ KLING_BASE_URL: 'ftp://x' }, 'KLING_BASE_URL'],
    [{ WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'maybe' }, 'WEBHOOK_ALLOW_PRIVATE_NETWORKS'],
    [{ QUEUE_PREFIX: 'kt:prod' }, 'QUEUE_PREFIX'],
    [{ QUEUE_PREFIX: '{}' }, 'QUEUE_PREFIX'],
    [{ QUEUE_PREFIX: '{kt' }, 'QUEUE_PREFIX'],
    [{ QUEUE_PREFIX: '{a}{b}' }, 'QUEUE_PREFIX'],
    [{ REDIS_CLUSTER: 'on' }, 'REDIS_CLUSTER'],
    [{ REDIS_CLUSTER: 'true', REDIS_URL: 'redis://10.0.0.1:6379/2' }, 'REDIS_URL'],
    [{ REDIS_CLUSTER: 'true', REDIS_URL: '/run/redis.sock' }, 'REDIS_URL'],
  ])('fails fast on %j, naming %s', (env, name) => {
    expect(() => loadConfig(env)).toThrow(new RegExp(`${name}:`));
  });

  it('keeps the prefix as written on one Redis, hash tag or not', () => {
    expect(loadConfig({}).QUEUE_PREFIX).toBe('kt');
    expect(loadConfig({ QUEUE_PREFIX: '{kt}' }).QUEUE_PREFIX).toBe('{kt}');
    expect(loadConfig({ QUEUE_PREFIX: 'prod-{kt}' }).QUEUE_PREFIX).toBe('prod-{kt}');
  });

  it('gives the prefix a hash tag on a Redis Cluster, unless it has one', () => {
    const cluster = { REDIS_CLUSTER: 'true', REDIS_URL: 'rediss://user:p%40ss@cluster.example.com:6379' };
    expect(loadConfig(cluster)).toMatchObject({ REDIS_CLUSTER: true, QUEUE_PREFIX: '{kt}' });
    expect(loadConfig({ ...cluster, QUEUE_PREFIX: 'prod' }).QUEUE_PREFIX).toBe('{prod}');
    expect(loadConfig({ ...cluster, QUEUE_PREFIX: 'prod-{kt}' }).QUEUE_PREFIX).toBe('prod-{kt}');
    expect(loadConfig({ ...cluster, REDIS_URL: 'redis://10.0.0.1:7000/0' }).QUEUE_PREFIX).toBe('{kt}');
  });

  describe('retention of finished history', () => {
    it('keeps everything by default, and when a variable is empty', () => {
      for (const env of [{}, { TASK_RETENTION_DAYS: '', EVENT_RETENTION_DAYS: '', DELIVERY_RETENTION_DAYS: '' }]) {
        const c = loadConfig(env);
        expect([c.TASK_RETENTION_DAYS, c.EVENT_RETENTION_DAYS, c.DELIVERY_RETENTION_DAYS]).toEqual([undefined, undefined, undefined]);
      }
    });

    it('takes whole days, events and deliveries kept no longer than their tasks', () => {
      expect(loadConfig({ TASK_RETENTION_DAYS: '90', EVENT_RETENTION_DAYS: '30', DELIVERY_RETENTION_DAYS: '90' })).toMatchObject({
        TASK_RETENTION_DAYS: 90,
        EVENT_RETENTION_DAYS: 30,
        DELIVERY_RETENTION_DAYS: 90,
      });
      // Tasks kept forever: any limit for their events and deliveries.
      expect(loadConfig({ EVENT_RETENTION_DAYS: '3650', DELIVERY_RETENTION_DAYS: '1' })).toMatchObject({ EVENT_RETENTION_DAYS: 3650 });
      expect(loadConfig({ TASK_RETENTION_DAYS: '2', IDEMPOTENCY_TTL_HOURS: '48' }).TASK_RETENTION_DAYS).toBe(2);
    });

    it.each([
      [{ TASK_RETENTION_DAYS: '0' }, 'TASK_RETENTION_DAYS', /too small/i],
      [{ EVENT_RETENTION_DAYS: '-3' }, 'EVENT_RETENTION_DAYS', /too small/i],
      [{ DELIVERY_RETENTION_DAYS: '1.5' }, 'DELIVERY_RETENTION_DAYS', /expected int/],
      [{ TASK_RETENTION_DAYS: 'forever' }, 'TASK_RETENTION_DAYS', /expected number/],
      [{ TASK_RETENTION_DAYS: '30', EVENT_RETENTION_DAYS: '31' }, 'EVENT_RETENTION_DAYS', /must not exceed TASK_RETENTION_DAYS \(30\)/],
      [{ TASK_RETENTION_DAYS: '7', DELIVERY_RETENTION_DAYS: '8' }, 'DELIVERY_RETENTION_DAYS', /must not exceed TASK_RETENTION_DAYS \(7\)/],
      [{ TASK_RETENTION_DAYS: '1', IDEMPOTENCY_TTL_HOURS: '25' }, 'TASK_RETENTION_DAYS', /must cover IDEMPOTENCY_TTL_HOURS \(25 h\)/],
    ])('refuses %j, naming %s', (env, name, why) => {
      expect(() => loadConfig(env)).toThrow(new RegExp(`${name}: `));
      expect(() => loadConfig(env)).toThrow(why);
    });
  });
});
