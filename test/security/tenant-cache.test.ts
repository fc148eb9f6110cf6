import request from 'supertest';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { eventually } from '../helpers/invariants';

/**
 * API processes cache tenants by credential; a change of the tenants table, however it is made,
 * must reach them at once (trigger + LISTEN/NOTIFY), not after the cache's expiry.
 */
describe('tenant cache', () => {
  let h: Harness;
  beforeAll(async () => (h = await startHarness({ workers: false })));
  afterAll(async () => h.close());

  const list = (key: string) => request(h.url).get('/v1/images/generations').set(bearer(key));

  it('serves a known key from the cache, and forgets it as soon as the tenant changes in the database', async () => {
    const tenant = await h.newTenant();
    expect((await list(tenant.api_key)).status).toBe(200);
    // Without the trigger's notification the change stays unseen: the answer comes from the cache.
    await h.api.db.$executeRawUnsafe('ALTER TABLE tenants DISABLE TRIGGER tenants_notify_change');
    try {
      await h.api.db.$executeRaw`UPDATE tenants SET revoked_at = now() WHERE id = ${tenant.id}`;
      expect((await list(tenant.api_key)).status).toBe(200);
    } finally {
      await h.api.db.$executeRawUnsafe('ALTER TABLE tenants ENABLE TRIGGER tenants_notify_change');
    }
    // Any later write of the tenant (here plain SQL, as an operator in Prisma Studio would) is seen at once.
    await h.api.db.$executeRaw`UPDATE tenants SET name = name WHERE id = ${tenant.id}`;
    await eventually('the key is refused', async () => (await list(tenant.api_key)).status === 401, 2000);
  });

  it('refuses a key revoked by the CLI path right after it was used', async () => {
    const tenant = await h.newTenant();
    expect((await list(tenant.api_key)).status).toBe(200);
    const { revokeTenant } = await import('../../src/tenants/tenants.service');
    expect(await revokeTenant(h.api.db, tenant.id)).toBe(true);
    await eventually('the key is refused', async () => (await list(tenant.api_key)).status === 401, 2000);
  });
});
