import { RACED, retryOnRace } from '../../src/lib/retry-on-race';

describe('retryOnRace', () => {
  it('runs the attempt again while it reports a race, and returns the first real result', async () => {
    let calls = 0;
    const result = await retryOnRace('task x', async () => (++calls < 3 ? RACED : `done after ${calls}`));
    expect(result).toBe('done after 3');
  });

  it('passes null and undefined results through as results, not as races', async () => {
    expect(await retryOnRace('task x', async () => null)).toBeNull();
    expect(await retryOnRace('task x', async () => undefined)).toBeUndefined();
  });

  it('gives up with an error naming the row after ten races', async () => {
    let calls = 0;
    await expect(
      retryOnRace('task x', async () => {
        calls++;
        return RACED;
      }),
    ).rejects.toThrow('task x: gave up after 10 concurrent updates');
    expect(calls).toBe(10);
  });
});
