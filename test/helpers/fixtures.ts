import { randomBytes, randomUUID } from 'node:crypto';
import request from 'supertest';
import type { Db } from '../../src/db/client';
import { insertTask } from '../../src/tasks/task-repository';
import { PNG } from 'pngjs';

/** A real PNG of the given size, as bare base64 (what Kling's `image` field takes). */
export function pngBase64(width: number, height: number): string {
  const png = new PNG({ width, height });
  png.data.fill(200);
  // A fixed filter skips pngjs's adaptive filter search (slow under jest).
  return PNG.sync.write(png, { filterType: 2 }).toString('base64');
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/**
 * Creates `count` tasks through the API for a new tenant of `h`, each reporting to `callbackUrl`,
 * and returns their ids. `extra(i)` adds fields to the i-th body.
 */
export async function createBatch(
  h: { url: string; newTenant(name?: string): Promise<{ api_key: string }> },
  count: number,
  callbackUrl: string,
  extra: (i: number) => object = () => ({}),
): Promise<string[]> {
  const key = (await h.newTenant()).api_key;
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await request(h.url)
      .post('/v1/images/generations')
      .set(bearer(key))
      .send({ prompt: `p${i}`, callback_url: callbackUrl, ...extra(i) });
    if (res.status !== 200) throw new Error(`create ${i} answered ${res.status}: ${JSON.stringify(res.body)}`);
    ids.push(res.body.data.task_id);
  }
  return ids;
}

/** A task row exactly as the API commits it, written directly: no job is enqueued for it. */
export async function insertQueuedTask(db: Db, tenantId: string, callbackUrl?: string): Promise<string> {
  const id = randomUUID();
  await insertTask(db, {
    id,
    tenantId,
    request: { model_name: 'kling-v3', prompt: 'x' },
    modelName: 'kling-v3',
    kind: 'image-generation',
    pool: 'image',
    slotCost: 1,
    callbackUrl,
    callbackToken: randomBytes(24).toString('base64url'),
  });
  return id;
}
