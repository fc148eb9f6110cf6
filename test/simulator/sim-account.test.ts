import request from 'supertest';
import { createKlingSimulator } from '../../src/simulator/kling-simulator';

/** The simulator as one upstream account: its balance, its packs running out, and faults switched while it runs. */
describe('the simulator as an account', () => {
  const sim = createKlingSimulator({ apiKey: 'key-a', processingAfterMs: 10_000, finishAfterMs: 10_000 });
  const auth = { authorization: 'Bearer key-a' };
  afterAll(() => sim.close());
  beforeEach(() => sim.reset());

  const costs = () => request(sim.app).get('/account/costs?start_time=0&end_time=1').set(auth);
  const create = () => request(sim.app).post('/v1/images/generations').set(auth).send({ prompt: 'x' });

  it('lists its pack with the units left, one fewer per task created', async () => {
    sim.faults.packUnits = 10;
    expect((await create()).body.code).toBe(0);
    const res = await costs();
    expect(res.body.data.resource_pack_subscribe_infos).toEqual([
      expect.objectContaining({ remaining_quantity: 9, total_quantity: 10, status: 'online' }),
    ]);
    expect((await request(sim.app).get('/account/costs').set(auth)).body.code).toBe(1201);
    expect((await request(sim.app).get('/account/costs?start_time=0&end_time=1')).body.code).toBe(1001);
  });

  it('answers 1102 to creates once its packs are used up, switched on with POST /sim/faults', async () => {
    expect((await request(sim.app).post('/sim/faults').send({ packs_exhausted: true })).status).toBe(401);
    const switched = await request(sim.app).post('/sim/faults').set(auth).send({ packs_exhausted: true, image_slots: 2 });
    expect(switched.body.data).toEqual({ packs_exhausted: true, image_slots: 2, video_slots: null });
    const refused = await create();
    expect([refused.status, refused.body.code]).toEqual([429, 1102]);
    expect(sim.createdCount()).toBe(0);
    expect((await costs()).body.data.resource_pack_subscribe_infos[0]).toMatchObject({ remaining_quantity: 0, status: 'runOut' });
    await request(sim.app).post('/sim/faults').set(auth).send({ packs_exhausted: false, image_slots: null });
    expect((await create()).body.code).toBe(0);
    expect(sim.faults.concurrencyLimit).toBe(Infinity);
  });
});
