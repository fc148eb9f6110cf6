import { groupCommit } from '../../src/lib/group-commit';

describe('groupCommit', () => {
  it('writes a lone call at once, and calls arriving during a write together in the next one', async () => {
    const batches: number[][] = [];
    let release!: () => void;
    const firstWrite = new Promise<void>((r) => (release = r));
    const write = groupCommit(async (items: number[]) => {
      batches.push(items);
      if (batches.length === 1) await firstWrite;
      return items.map((i) => i * 10);
    }, 3);
    const first = write(1);
    const rest = [2, 3, 4, 5, 6].map(write);
    expect(batches).toEqual([[1]]);
    release();
    expect(await Promise.all([first, ...rest])).toEqual([10, 20, 30, 40, 50, 60]);
    // At most 3 per write, in arrival order.
    expect(batches).toEqual([[1], [2, 3, 4], [5, 6]]);
  });

  it('fails only the item answered with an Error, and the whole batch when the write throws', async () => {
    let fail = false;
    const write = groupCommit(async (items: number[]) => {
      if (fail) throw new Error('database down');
      return items.map((i) => (i === 2 ? new Error('bad item') : i));
    }, 10);
    const results = await Promise.allSettled([write(1), write(2), write(3)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason.message).toBe('bad item');
    fail = true;
    await expect(write(4)).rejects.toThrow('database down');
    fail = false;
    // A failed write does not stop the next ones.
    expect(await write(5)).toBe(5);
  });
});
