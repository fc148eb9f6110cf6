import request from 'supertest';
import { newDeliveryId } from '../../src/webhooks/events';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';

/**
 * Task and delivery ids grow with time (UUID v7), so the indexes keyed on them (the tasks', the
 * events', the deliveries', the attempts') take new rows at their newest end: with months of tasks
 * kept, random ids sent every new task into a random index page of the history.
 */
const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const sorted = (xs: string[]) => [...xs].sort();

describe('ids of new rows', () => {
  let h: Harness;
  beforeAll(async () => (h = await startHarness({ workers: false })));
  afterAll(async () => h.close());

  it('gives tasks created one after another ids in creation order', async () => {
    const key = (await h.newTenant()).api_key;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await request(h.url)
        .post('/v1/images/generations')
        .set(bearer(key))
        .send({ prompt: `p${i}` });
      expect(res.status).toBe(200);
      ids.push(res.body.data.task_id);
      await new Promise((r) => setTimeout(r, 2));
    }
    for (const id of ids) expect(id).toMatch(V7);
    expect(sorted(ids)).toEqual(ids);
  });

  it('gives webhook deliveries Standard Webhooks ids in creation order', async () => {
    const ids = Array.from({ length: 50 }, () => newDeliveryId());
    for (const id of ids) expect(id).toMatch(/^msg_[0-9a-f]{32}$/);
    expect(ids.map((id) => id.slice(4)).every((hex) => hex[12] === '7')).toBe(true);
    expect(sorted(ids)).toEqual(ids);
  });
});
