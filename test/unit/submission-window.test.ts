import { MIN_WINDOW, SubmissionWindow } from '../../src/tasks/submission-window';

/**
 * The backpressure window on its own, with the deployment's counts as plain values: what is tested
 * is when it admits, waits, grows and is cut. The workers' use of it is tested end to end in
 * test/reliability/backpressure.test.ts.
 */
function world(max = 1000) {
  const state = { held: 0, congested: false, failing: false, markUnreadable: false, sizes: [] as number[] };
  const window = new SubmissionWindow({
    inFlight: async () => {
      if (state.failing) throw new Error('database unavailable');
      return state.held;
    },
    congested: async () => {
      if (state.markUnreadable) throw new Error('Redis unavailable');
      return state.congested;
    },
    max,
    onChange: (size) => state.sizes.push(size),
  });
  return { state, window };
}

/** Admits `n` submissions and claims each at once (each holds one slot from then on). */
async function submit(w: ReturnType<typeof world>, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const claimed = await w.window.admit();
    w.state.held++;
    claimed();
  }
}

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('SubmissionWindow', () => {
  it('admits up to the window at once, then makes the next submission wait until slots are released', async () => {
    // At its maximum, the window cannot grow: only released slots make room.
    const w = world(64);
    const start = w.window.size();
    await submit(w, start);
    let admitted = false;
    const next = w.window.admit().then((claimed) => {
      admitted = true;
      claimed();
    });
    await new Promise((r) => setTimeout(r, 150));
    expect(admitted).toBe(false);
    w.state.held -= 10;
    await next;
    expect(admitted).toBe(true);
  });

  it('counts admissions whose claim is not done yet, so one process never overshoots between two reads', async () => {
    const w = world(64);
    const start = w.window.size();
    // Admitted, never claimed (the counts read do not include them): they still take room.
    for (let i = 0; i < start; i++) await w.window.admit();
    let admitted = false;
    void w.window.admit().then(() => (admitted = true));
    await new Promise((r) => setTimeout(r, 150));
    expect(admitted).toBe(false);
    w.window.close();
  });

  it('grows while it is what limits and the callbacks keep up, up to its maximum', async () => {
    const w = world(200);
    const start = w.window.size();
    const releaser = setInterval(() => (w.state.held = Math.max(0, w.state.held - 5)), 20);
    try {
      await submit(w, 600);
    } finally {
      clearInterval(releaser);
    }
    expect(w.window.size()).toBeGreaterThan(start);
    expect(Math.max(...w.state.sizes)).toBeLessThanOrEqual(200);
  });

  it('is cut to 70% of what is in flight when an API process says its callbacks are congested, never below the minimum', async () => {
    const w = world();
    await submit(w, 40);
    w.state.congested = true;
    await new Promise((r) => setTimeout(r, 60));
    let admitted = false;
    const waiting = w.window.admit().then((claimed) => {
      admitted = true;
      claimed();
    });
    await until(() => w.window.size() === Math.floor(40 * 0.7));
    // Still congested, the 40 tasks still in flight: cut again (half a second later), to 70% of the window.
    await until(() => w.window.size() === Math.floor(Math.floor(40 * 0.7) * 0.7));
    expect(admitted).toBe(false);
    // The callbacks caught up: the waiting submission goes.
    w.state.held = 2;
    w.state.congested = false;
    await waiting;
    expect(admitted).toBe(true);

    // Congested with nothing in flight: the minimum, not zero, so submissions never stop for good.
    const idle = world();
    idle.state.congested = true;
    (await idle.window.admit())();
    expect(idle.window.size()).toBe(MIN_WINDOW);
  });

  it('admits when the counts cannot be read: submissions never stop on a signal they cannot get', async () => {
    const w = world();
    await submit(w, w.window.size());
    w.state.failing = true;
    const claimed = await w.window.admit();
    claimed();
    expect(w.state.failing).toBe(true);
  });

  it('neither grows nor is cut while the congestion mark cannot be read, and still waits for room', async () => {
    // Unreadable from the first read on: no read while filling the window may resize it either.
    const w = world();
    w.state.markUnreadable = true;
    const start = w.window.size();
    await submit(w, start);
    let admitted = false;
    const next = w.window.admit().then((claimed) => {
      admitted = true;
      w.state.held++;
      claimed();
    });
    // Several reads and growth intervals with a submission waiting: a window that may grow would.
    await new Promise((r) => setTimeout(r, 500));
    expect(admitted).toBe(false);
    expect(w.window.size()).toBe(start);
    w.state.held -= 1;
    await next;
    expect(w.window.size()).toBe(start);
    expect(w.state.sizes).toEqual([start]);
  });

  it('lets every waiting submission go when closed, so a worker shutting down is not held', async () => {
    const w = world();
    await submit(w, w.window.size());
    const waiting = [w.window.admit(), w.window.admit()];
    w.window.close();
    await expect(Promise.all(waiting)).resolves.toHaveLength(2);
  });
});
