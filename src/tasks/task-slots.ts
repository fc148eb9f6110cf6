import type { Db, Task } from '../db/client';

/**
 * Upstream concurrency slots. Each image of a task holds one slot from its submission until it ends
 * (Kling counts them so; past the account's limit it answers 1303). The truth is `tasks.slots_held`:
 * claimed here before the upstream call, cleared by the status machine on every terminal path, so a
 * restart has nothing to recompute and nothing can leak.
 */

/** Serialises claims across every process (one configured credential: one pool). */
const SLOT_LOCK = 0x6b6c696e67; // "kling"

export type ClaimResult = 'claimed' | 'held' | 'wait';

/** Slots a task needs; a request larger than the whole pool takes the whole pool rather than waiting forever. */
export const slotsNeeded = (n: number, limit: number) => Math.min(Math.max(n, 1), limit);

/**
 * Claims the task's slots if they are free and no older queued task is still waiting for slots
 * (tasks start in the order they were accepted; a large task is not starved by small ones).
 */
export async function claimSlots(db: Db, taskId: string, limit: number): Promise<ClaimResult> {
  return db.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(${SLOT_LOCK})`;
    const task = await tx.task.findUnique({ where: { id: taskId } });
    if (!task || task.state !== 'queued') return 'wait';
    if (task.slotsHeld > 0) return 'held';
    const [{ held }] = await tx.$queryRaw<{ held: bigint | null }[]>`SELECT sum(slots_held) AS held FROM tasks WHERE slots_held > 0`;
    const ahead = await tx.task.findFirst({
      where: {
        state: 'queued',
        slotsHeld: 0,
        OR: [{ createdAt: { lt: task.createdAt } }, { createdAt: task.createdAt, id: { lt: task.id } }],
      },
      select: { id: true },
    });
    const need = slotsNeeded(task.n, limit);
    if (ahead || Number(held ?? 0) + need > limit) return 'wait';
    await tx.task.update({ where: { id: task.id }, data: { slotsHeld: need } });
    return 'claimed';
  });
}

export async function slotsInUse(db: Db): Promise<number> {
  const [{ held }] = await db.$queryRaw<{ held: bigint | null }[]>`SELECT sum(slots_held) AS held FROM tasks WHERE slots_held > 0`;
  return Number(held ?? 0);
}

/** 1-based place of a queued task among all tasks still waiting to be submitted. */
export async function queuePosition(db: Db, task: Pick<Task, 'id' | 'createdAt'>): Promise<number> {
  const before = await db.task.count({
    where: { state: 'queued', OR: [{ createdAt: { lt: task.createdAt } }, { createdAt: task.createdAt, id: { lt: task.id } }] },
  });
  return before + 1;
}

/** The oldest tasks waiting to be submitted, in the order they may take slots. */
export async function nextWaiting(db: Db, limit: number): Promise<string[]> {
  const rows = await db.task.findMany({
    where: { state: 'queued', slotsHeld: 0 },
    orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
    select: { id: true },
    take: limit,
  });
  return rows.map((r) => r.id);
}
