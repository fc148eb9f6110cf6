import request from 'supertest';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { FRAME_URL, IMAGE_PATH, postCreate, VIDEO_KINDS } from '../helpers/video';

// A task belongs to its kind: it is found, watched and acted on only under its kind's path, and an
// Idempotency-Key names one request of one kind.

let h: Harness;
let key: string;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => h.close());
beforeEach(async () => void (key = (await h.newTenant()).api_key));

const [TEXT_TO_VIDEO, IMAGE_TO_VIDEO] = VIDEO_KINDS;
const ALL_PATHS = [IMAGE_PATH, TEXT_TO_VIDEO.path, IMAGE_TO_VIDEO.path];

describe('a task under the path of another kind', () => {
  it('is 404/1203 by task_id and by external_task_id, for every route, and is listed under its own path only', async () => {
    const tasks = [
      { path: IMAGE_PATH, body: { prompt: 'a lighthouse' }, external: 'mine-image' },
      { path: TEXT_TO_VIDEO.path, body: TEXT_TO_VIDEO.body, external: 'mine-text2video' },
      { path: IMAGE_TO_VIDEO.path, body: IMAGE_TO_VIDEO.body, external: 'mine-image2video' },
    ];
    const ids: string[] = [];
    for (const t of tasks) {
      const res = await postCreate(h, key, t.path, { ...t.body, external_task_id: t.external });
      ids.push(res.body.data.task_id);
    }
    for (const [i, own] of tasks.entries()) {
      for (const ref of [ids[i], own.external]) {
        expect((await request(h.url).get(`${own.path}/${ref}`).set(bearer(key))).body.data.task_id).toBe(ids[i]);
      }
      for (const other of ALL_PATHS.filter((p) => p !== own.path)) {
        const routes = [
          ['get', `${other}/${ids[i]}`],
          ['get', `${other}/${own.external}`],
          ['get', `${other}?external_task_id=${own.external}`],
          ['get', `${other}/${ids[i]}?wait=1`],
          ['get', `${other}/${ids[i]}/events`],
          ['get', `${other}/${ids[i]}/deliveries`],
          ['post', `${other}/${ids[i]}/cancel`],
        ] as const;
        for (const [method, url] of routes) {
          const res = await request(h.url)[method](url).set(bearer(key));
          expect({ route: `${method} ${url}`, status: res.status, code: res.body.code }).toEqual({
            route: `${method} ${url}`,
            status: 404,
            code: 1203,
          });
        }
      }
      const list = await request(h.url).get(`${own.path}?pageNum=1&pageSize=10`).set(bearer(key));
      expect(list.body.data.map((t: { task_id: string }) => t.task_id)).toEqual([ids[i]]);
    }
    // None was canceled by a request under another path.
    const rows = await h.api.db.task.findMany({ where: { id: { in: ids } } });
    expect(rows.filter((r) => r.failureReason === 'canceled')).toEqual([]);
  });

  it("refuses a video task an external_task_id the tenant's image task already has", async () => {
    expect((await postCreate(h, key, IMAGE_PATH, { prompt: 'x', external_task_id: 'one-id' })).status).toBe(200);
    for (const { path, body } of VIDEO_KINDS) {
      const res = await postCreate(h, key, path, { ...body, external_task_id: 'one-id' });
      expect([res.status, res.body.code, res.body.message]).toEqual([
        400,
        1201,
        'external_task_id: is already used by another task of yours',
      ]);
    }
    expect(await h.api.db.task.count({ where: { externalTaskId: 'one-id' } })).toBe(1);
  });
});

describe('Idempotency-Key across kinds', () => {
  it('refuses a video create with the key of an image create of the same tenant (409/1201), and stores nothing', async () => {
    const image = await postCreate(h, key, IMAGE_PATH, { prompt: 'a fox' }, { 'idempotency-key': 'shared-key' });
    expect(image.status).toBe(200);
    for (const { path, body } of VIDEO_KINDS) {
      const video = await postCreate(h, key, path, body, { 'idempotency-key': 'shared-key' });
      expect([video.status, video.body.code]).toEqual([409, 1201]);
      expect(video.body.message).toMatch(/^Idempotency-Key: /);
    }
    const tenantId = (await h.api.db.task.findUniqueOrThrow({ where: { id: image.body.data.task_id } })).tenantId;
    expect(await h.api.db.task.findMany({ where: { tenantId }, select: { kind: true } })).toEqual([{ kind: 'image-generation' }]);
  });

  it('answers a replay of a video create with the same video task, and creates one upstream task', async () => {
    const headers = { 'idempotency-key': 'video-key' };
    const first = await postCreate(h, key, TEXT_TO_VIDEO.path, { prompt: 'a fox', duration: '5' }, headers);
    expect(first.status).toBe(200);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    // The same request, Kling's defaults spelt out or left out.
    for (const body of [
      { prompt: 'a fox', duration: '5' },
      { prompt: 'a fox', mode: 'std', cfg_scale: 0.5 },
    ]) {
      const replay = await postCreate(h, key, TEXT_TO_VIDEO.path, body, headers);
      expect([replay.status, replay.headers['idempotent-replayed']]).toEqual([200, 'true']);
      expect(replay.body.data).toMatchObject({ task_id: first.body.data.task_id, created_at: first.body.data.created_at });
    }
    // The same key for the other video kind is another request.
    const other = await postCreate(h, key, IMAGE_TO_VIDEO.path, { image: FRAME_URL, prompt: 'a fox' }, headers);
    expect([other.status, other.body.code]).toEqual([409, 1201]);

    const id = first.body.data.task_id;
    const done = await h.waitForTask(id, (t) => t.state === 'succeed');
    expect(done.kind).toBe('text-to-video');
    expect(await h.api.db.task.count({ where: { tenantId: done.tenantId } })).toBe(1);
    await h.sim.settle();
    expect([...h.sim.tasks.values()].filter((u) => u.external_task_id === id).map((u) => u.kind)).toEqual(['text-to-video']);
  });
});
