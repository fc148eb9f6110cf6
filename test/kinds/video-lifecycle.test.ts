import http from 'node:http';
import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import type { NewTenantCredentials } from '../../src/tenants/tenants.service';
import { bearer, pngBase64 } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { eventually } from '../helpers/invariants';
import { readMp4 } from '../helpers/mp4';
import { startReceiver, type Receiver } from '../helpers/receiver';
import { FRAME_URL, FROZEN_UPSTREAM, moveUpstream, postCreate, upstreamTaskOf, VIDEO_KINDS } from '../helpers/video';

// Both video kinds through the real service: API and workers against Postgres, Redis and the
// simulator over HTTP. The simulator moves a task on only when the test says, so every wait below
// waits for a change the test made.

let h: Harness;
let rx: Receiver;
let tenant: NewTenantCredentials;

beforeAll(async () => {
  h = await startHarness({ simulator: FROZEN_UPSTREAM });
  rx = await startReceiver();
});
afterAll(async () => {
  await rx.close();
  await h.close();
});
// A tenant per test: its lists hold that test's tasks only.
beforeEach(async () => void (tenant = await h.newTenant()));

const get = (path: string) => request(h.url).get(path).set(bearer(tenant.api_key));
/** The clips run at 4 frames a second: their length is the asked duration to a frame. */
const FRAME_SECONDS = 0.25;

/** Kling's own create bodies, as a client written for Kling sends them. */
const KLING_BODIES = [
  {
    name: 'text2video',
    path: '/v1/videos/text2video',
    kind: 'text-to-video',
    body: {
      model_name: 'kling-v3',
      prompt: 'a red fox runs through fresh snow at dusk',
      negative_prompt: 'blurry, low quality',
      cfg_scale: 0.5,
      mode: 'std',
      aspect_ratio: '9:16',
      duration: '7',
    },
    portrait: true,
  },
  {
    name: 'image2video from an image URL',
    path: '/v1/videos/image2video',
    kind: 'image-to-video',
    body: { model_name: 'kling-v3', image: FRAME_URL, prompt: 'the fox turns its head', cfg_scale: 0.7, mode: 'pro', duration: '5' },
    portrait: false,
  },
  {
    name: 'image2video from bare base64 of a PNG',
    path: '/v1/videos/image2video',
    kind: 'image-to-video',
    body: { image: pngBase64(480, 320), prompt: 'snow starts to fall', negative_prompt: 'text', duration: '10' },
    portrait: false,
  },
] as const;

/** Verifies a webhook with the independent Standard Webhooks package (throws on a bad signature) and returns its body. */
const verified = (r: { body: string; headers: http.IncomingHttpHeaders }) =>
  new Webhook(tenant.webhook_secret).verify(r.body, {
    'webhook-id': String(r.headers['webhook-id']),
    'webhook-timestamp': String(r.headers['webhook-timestamp']),
    'webhook-signature': String(r.headers['webhook-signature']),
  });

describe.each(KLING_BODIES)('$name through the service', ({ path, kind, body, portrait }) => {
  it("takes Kling's body, sends it upstream with our callback and id, and follows it to succeed by polling GET", async () => {
    const externalTaskId = 'client-video-1';
    const created = await postCreate(h, tenant.api_key, path, { ...body, callback_url: rx.url, external_task_id: externalTaskId });
    expect(created.status).toBe(200);
    const id = created.body.data.task_id as string;
    expect(created.body.data).toEqual({
      task_id: id,
      task_status: 'submitted',
      task_info: { external_task_id: externalTaskId },
      created_at: expect.any(Number),
      updated_at: expect.any(Number),
    });
    const stored = { model_name: 'kling-v3', ...body };
    expect(await h.api.db.task.findUniqueOrThrow({ where: { id } })).toMatchObject({ kind, pool: 'video', slotCost: 1, request: stored });

    // Upstream: the kind's path, the body as the client sent it, our callback URL and our id.
    const upstream = await upstreamTaskOf(h, id);
    expect(upstream.kind).toBe(kind);
    const [sent] = h.sim.received.filter((r) => r.method === 'POST' && (r.body as { external_task_id?: string }).external_task_id === id);
    expect(sent.path).toBe(path);
    expect(sent.body).toEqual({ ...stored, callback_url: expect.stringMatching(`^${h.url}/callbacks/kling/${id}/`), external_task_id: id });

    await h.waitForTask(id, (t) => t.state === 'submitted');
    const submitted = (await get(`${path}/${id}`)).body.data;
    expect(submitted).toMatchObject({
      task_status: 'submitted',
      task_result: { videos: [] },
      tracker: { state: 'submitted', slots_held: 1 },
    });
    expect(submitted.tracker).toMatchObject({ upstream_task_id: upstream.task_id, model_name: 'kling-v3' });
    expect(submitted.tracker).not.toHaveProperty('n');

    h.sim.setTaskStatus(upstream.task_id, 'processing');
    h.sim.setTaskStatus(upstream.task_id, 'succeed');
    let got: Record<string, any> = submitted;
    await eventually('GET shows succeed', async () => (got = (await get(`${path}/${id}`)).body.data).task_status === 'succeed', 15_000);
    const [video] = upstream.result!.videos!;
    expect(got).toMatchObject({
      task_id: id,
      task_info: { external_task_id: externalTaskId },
      tracker: { state: 'succeed', slots_held: 0 },
    });
    expect(got.task_result).toEqual({ videos: [{ id: video.id, url: video.url, duration: body.duration }] });

    // The same object in the list, by external_task_id as a query and in the path.
    expect((await get(`${path}?pageNum=1&pageSize=5`)).body.data).toEqual([got]);
    expect((await get(`${path}?external_task_id=${externalTaskId}`)).body.data).toEqual(got);
    expect((await get(`${path}/${externalTaskId}`)).body.data).toEqual(got);

    const file = await fetch(video.url);
    expect(file.headers.get('content-type')).toBe('video/mp4');
    const mp4 = readMp4(Buffer.from(await file.arrayBuffer()));
    expect(Math.abs(mp4.seconds - Number(body.duration))).toBeLessThanOrEqual(FRAME_SECONDS);
    expect(mp4.videoTracks[0].height > mp4.videoTracks[0].width).toBe(portrait);

    // Signed webhooks, one per status the client sees; the last is the task as GET shows it.
    const hooksOf = () => rx.received.filter((r) => r.json.task_id === id);
    await eventually('two webhooks', async () => hooksOf().length === 2);
    const hooks = hooksOf().map(verified) as Record<string, unknown>[];
    expect(hooks.map((w) => w.task_status)).toEqual(['processing', 'succeed']);
    expect(hooks[1]).toEqual(got);
  });
});

/** An event stream read as it arrives. */
function openEvents(path: string) {
  const events: Record<string, any>[] = [];
  let ended = false;
  let status = 0;
  let buffer = '';
  const req = http.get(`${h.url}${path}`, { headers: bearer(tenant.api_key) }, (res) => {
    status = res.statusCode ?? 0;
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = /^data: (.*)$/m.exec(block);
        if (data) events.push({ event: /^event: (.*)$/m.exec(block)?.[1], data: JSON.parse(data[1]) });
      }
    });
    res.on('end', () => (ended = true));
  });
  return {
    events,
    status: () => status,
    ended: () => ended,
    close: () => req.destroy(),
    count: (n: number) => eventually(`${n} events`, async () => events.length >= n, 15_000),
  };
}

describe.each(VIDEO_KINDS)('waiting for a $kind task', ({ kind, path, body }) => {
  const create = async () => (await postCreate(h, tenant.api_key, path, body)).body.data.task_id as string;

  it('long poll ?wait= answers each change as it happens, with the video at the end', async () => {
    const id = await create();
    await h.waitForTask(id, (t) => t.state === 'submitted');
    for (const status of ['processing', 'succeed'] as const) {
      const poll = get(`${path}/${id}?wait=20`).then((res) => res);
      // Waiting before the change: only the change can answer it with the new status.
      await eventually('the long poll waiting', async () => h.api.changes.waiting() === 1, 10_000);
      await moveUpstream(h, id, status);
      const res = await poll;
      expect([res.status, res.body.data.task_status]).toEqual([200, status]);
    }
    const done = (await get(`${path}/${id}?wait=20`)).body.data;
    expect(done.task_result.videos).toEqual([{ id: expect.any(String), url: expect.stringContaining('.mp4'), duration: '5' }]);
    expect((await h.api.db.task.findUniqueOrThrow({ where: { id } })).kind).toBe(kind);
  });

  it('SSE /events sends the task now, then one event per change, and ends after succeed', async () => {
    const id = await create();
    await h.waitForTask(id, (t) => t.state === 'submitted');
    const stream = openEvents(`${path}/${id}/events`);
    try {
      await stream.count(1);
      await moveUpstream(h, id, 'processing');
      await stream.count(2);
      await moveUpstream(h, id, 'succeed');
      await eventually('the stream ended', async () => stream.ended(), 15_000);
      expect(stream.status()).toBe(200);
      expect(stream.events.map((e) => [e.event, e.data.task_id, e.data.task_status])).toEqual([
        ['task', id, 'submitted'],
        ['task', id, 'processing'],
        ['task', id, 'succeed'],
      ]);
      expect(stream.events[2].data.task_result.videos).toEqual([{ id: expect.any(String), url: expect.any(String), duration: '5' }]);
    } finally {
      stream.close();
    }
  });
});
