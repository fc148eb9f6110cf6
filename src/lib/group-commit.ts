/**
 * Group commit: calls that arrive while a batch is being written wait and go together in the next
 * one. An idle service writes each call at once (no added latency, no timer); a busy one writes
 * one statement per batch instead of one per call. Every caller still gets its own answer only
 * after its batch is written. `write` answers each item in order: its result, or an Error for that
 * item alone; if it throws, the whole batch fails. (DataLoader batches per event-loop tick, which under a steady stream
 * of requests arriving in separate ticks gives batches of one: this batches per write in flight.)
 */
export function groupCommit<T, R>(write: (items: T[]) => Promise<(R | Error)[]>, maxBatch: number): (item: T) => Promise<R> {
  let pending: { item: T; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  let writing = false;

  const flush = async () => {
    writing = true;
    while (pending.length) {
      const batch = pending.slice(0, maxBatch);
      pending = pending.slice(batch.length);
      try {
        const results = await write(batch.map((p) => p.item));
        batch.forEach((p, i) => (results[i] instanceof Error ? p.reject(results[i]) : p.resolve(results[i] as R)));
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
    writing = false;
  };

  return (item) =>
    new Promise<R>((resolve, reject) => {
      pending.push({ item, resolve, reject });
      if (!writing) void flush();
    });
}
