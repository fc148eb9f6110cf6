import type { Db } from '../db/client';
import type { SlotPool } from '../kinds/kind';
import { nextWaiting } from '../tasks/task-slots';
import { ensureJob, submitJobOptions, type Queues } from './queues';

/** How many of the oldest waiting tasks get a fresh try when slots free up. */
const DISPATCH_BATCH = 20;

/**
 * Slots were released: give the oldest waiting tasks a submit job again (their earlier job ended
 * with "wait for slots"). The claim itself keeps the order, so waking a few extra is harmless.
 */
export async function dispatchWaiting(db: Db, queues: Queues, pool: SlotPool): Promise<number> {
  if (!queues.connected()) return 0;
  let added = 0;
  for (const id of await nextWaiting(db, pool, DISPATCH_BATCH)) {
    if (await ensureJob(queues.submit, 'submit', { taskId: id }, submitJobOptions(queues.settings, id))) added++;
  }
  return added;
}
