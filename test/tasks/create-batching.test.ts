import { imageGeneration } from '../../src/kinds/image-generation';
import { enqueueSubmits } from '../../src/queues/queues';
import request from 'supertest';
import type { Tenant } from '../../src/db/client';
import { createLogger } from '../../src/logger';
import { createTaskCreator } from '../../src/tasks/create-task';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';

/**
 * Concurrent creates are written together (one statement per batch). Batching must be invisible:
 * every accepted task and its first event are there, a duplicate external_task_id refuses that
 * request alone, and a row the database refuses fails only its own request.
 */
describe('creates written together', () => {
  let h: Harness;
  beforeAll(async () => (h = await startHarness({ workers: false })));
  afterAll(async () => h.close());
  beforeEach(async () => h.reset());

  const create = (key: string, body: object) =>
    request(h.url)
      .post('/v1/images/generations')
      .set(bearer(key))
      .send({ prompt: 'p', ...body });

  it('accepts concurrent creates each with its row and event; of those sharing an external_task_id exactly one', async () => {
    const key = (await h.newTenant()).api_key;
    const bodies = [
      ...Array.from({ length: 30 }, (_, i) => ({ external_task_id: `own-${i}` })),
      ...Array(10).fill({ external_task_id: 'same' }),
    ];
    const answers = await Promise.all(bodies.map((b) => create(key, b)));
    const accepted = answers.filter((r) => r.status === 200);
    const refused = answers.filter((r) => r.status !== 200);
    expect(accepted).toHaveLength(31);
    expect(refused.map((r) => [r.status, r.body.code, r.body.message])).toEqual(
      Array(9).fill([400, 1201, 'external_task_id: is already used by another task of yours']),
    );
    const ids = accepted.map((r) => r.body.data.task_id as string);
    const tasks = await h.api.db.task.findMany({ where: { id: { in: ids } }, include: { events: true } });
    expect(tasks).toHaveLength(31);
    for (const t of tasks) {
      expect(t.state).toBe('queued');
      expect(t.events.map((e) => [e.seq, e.fromState, e.toState, e.source])).toEqual([[1, null, 'queued', 'api']]);
      const answer = accepted.find((r) => r.body.data.task_id === t.id)!.body.data;
      expect(answer).toMatchObject({ created_at: t.createdAt.getTime(), task_info: { external_task_id: t.externalTaskId } });
    }
    expect(await h.api.db.task.count()).toBe(31);
    expect(await h.api.queues.submit.count()).toBe(31);
  });

  it('refuses a new Idempotency-Key with a taken external_task_id as a duplicate, batched with others, and keeps no key', async () => {
    const key = (await h.newTenant()).api_key;
    expect((await create(key, { external_task_id: 'taken' })).status).toBe(200);
    const withKey = (idem: string, body: object) => create(key, body).set('Idempotency-Key', idem);
    const answers = await Promise.all([
      withKey('k-taken', { external_task_id: 'taken' }),
      ...Array.from({ length: 8 }, (_, i) => withKey(`k-${i}`, { external_task_id: `free-${i}` })),
      ...Array.from({ length: 8 }, (_, i) => create(key, { prompt: `plain ${i}` })),
    ]);
    expect(answers.map((r) => [r.status, r.body.code, r.body.message ?? 'SUCCEED'])).toEqual([
      [400, 1201, 'external_task_id: is already used by another task of yours'],
      ...Array(16).fill([200, 0, 'SUCCEED']),
    ]);
    expect(await h.api.db.idempotencyKey.count({ where: { key: 'k-taken' } })).toBe(0);
    // The key was not spent on the refused request: with a free id it creates a task.
    const retry = await withKey('k-taken', { external_task_id: 'free-now' });
    expect([retry.status, retry.get('idempotent-replayed')]).toEqual([200, undefined]);
    expect(await h.api.db.task.count()).toBe(18);
  });

  it('fails only the request whose row the database refuses when it was batched with others', async () => {
    const tenant = await h.api.db.tenant.findUniqueOrThrow({ where: { id: (await h.newTenant()).id } });
    const createTask = createTaskCreator({
      db: h.api.db,
      enqueueSubmits: (ids) => enqueueSubmits(h.api.queues, ids),
      log: createLogger('silent'),
      models: { image: h.config.KLING_MODELS, video: h.config.KLING_VIDEO_MODELS },
      allowPrivateWebhooks: true,
      idempotencyTtlMs: 3_600_000,
      maxUnfinishedTasks: 1000,
    });
    // A tenant deleted after authentication: its row breaks the foreign key.
    const gone: Tenant = { ...tenant, id: 'tenant-that-does-not-exist' };
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => createTask(i === 5 ? gone : tenant, imageGeneration, { prompt: `p${i}` })),
    );
    expect(results.map((r) => r.status)).toEqual(Array.from({ length: 12 }, (_, i) => (i === 5 ? 'rejected' : 'fulfilled')));
    expect(await h.api.db.task.count()).toBe(11);
    expect(await h.api.db.taskEvent.count()).toBe(11);
  });

  it('refuses a NUL character anywhere in the body with a Kling error, and records nothing', async () => {
    const key = (await h.newTenant()).api_key;
    const res = await create(key, { prompt: 'a\u0000b' });
    expect([res.status, res.body.code]).toEqual([400, 1201]);
    expect(res.body.message).toBe('prompt: must not contain the NUL character (\\u0000)');
    expect(await h.api.db.task.count()).toBe(0);
  });
});
