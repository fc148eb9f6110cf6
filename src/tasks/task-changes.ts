import type { Db } from '../db/client';
import type { RedisClient } from '../lib/redis-client';

/**
 * "Task X changed", across processes: the process that commits a change publishes on Redis; every
 * API process subscribes once and wakes its local waiters (long polls, SSE streams). The process
 * also re-reads all its waited tasks from Postgres every second, in one query whatever the number
 * of waiters, so a lost message or a Redis outage only delays an answer.
 *
 * Nobody watches most changes, so a change is published only while somebody does: a process with
 * waiters keeps a mark in Redis (`<prefix>:task-watchers`, renewed while it has any), and a
 * publisher reads the mark at most once a second while it is busy. A watch that starts during
 * such a second may miss its first messages; the one-second re-read above covers exactly that.
 */
export interface TaskChanges {
  publish(taskId: string): void;
  /** Resolves true as soon as the task's event count passes `sinceSeq`, false after `timeoutMs`. */
  waitForChange(taskId: string, sinceSeq: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  /**
   * Calls `listener` with the id of every change published while it is registered (a tenant-wide
   * view filters them itself), and keeps publishers publishing meanwhile. Returns its removal.
   * Messages can be lost: a listener re-reads what it shows on its own schedule too.
   */
  listenAll(listener: (taskId: string) => void): () => void;
  /** Waiters and listeners of this process right now. */
  waiting(): number;
  close(): Promise<void>;
}

export interface TaskChangesOptions {
  db: Db;
  publisher: RedisClient;
  /** Opens the connection that subscribes to the changes (on the first watch; SUBSCRIBE holds a connection). */
  openSubscriber: () => RedisClient;
  prefix: string;
  /** Period of the Postgres re-read of the waited tasks (default 1 s); tests raise it to see the Redis path alone. */
  recheckMs?: number;
}

const DEFAULT_RECHECK_MS = 1000;
/** Life of the "somebody watches" mark; its holder renews it while it has waiters. */
const WATCH_MARK_TTL_MS = 5000;
const WATCH_MARK_RENEW_MS = 2000;
/** How long a publisher trusts what it last read of the mark. */
const WATCH_KNOWLEDGE_MS = DEFAULT_RECHECK_MS;

/** The event count of every task in `$1` that still exists: one statement for any number of waiters. */
const READ_EVENT_SEQS = 'SELECT id, event_seq FROM tasks WHERE id = ANY($1::text[])';

interface Waiter {
  sinceSeq: number;
  wake(): void;
}

export function createTaskChanges(opts: TaskChangesOptions): TaskChanges {
  const channel = `${opts.prefix}:task-changes`;
  const markKey = `${opts.prefix}:task-watchers`;
  const redis = opts.publisher;
  const recheckMs = opts.recheckMs ?? DEFAULT_RECHECK_MS;
  /** This process's waiters, by task id. */
  const waiters = new Map<string, Set<Waiter>>();
  const listeners = new Set<(taskId: string) => void>();
  let count = 0;

  /** Wakes the waiters of `ids` whose task has moved past their sequence, or no longer exists. */
  const check = async (ids: string[]) => {
    const { rows } = await opts.db.sql<{ id: string; event_seq: number }>(READ_EVENT_SEQS, [ids]);
    const seqs = new Map(rows.map((r) => [r.id, r.event_seq]));
    for (const id of ids) {
      const seq = seqs.get(id);
      for (const w of [...(waiters.get(id) ?? [])]) if (seq === undefined || seq > w.sinceSeq) w.wake();
    }
  };

  // Messages and new waiters of one turn of the event loop share one read.
  const due = new Set<string>();
  let flushScheduled = false;
  const checkSoon = (taskId: string) => {
    due.add(taskId);
    if (flushScheduled) return;
    flushScheduled = true;
    setImmediate(() => {
      flushScheduled = false;
      const ids = [...due].filter((id) => waiters.has(id));
      due.clear();
      if (ids.length) void check(ids).catch(() => undefined);
    });
  };

  let subscriber: RedisClient | undefined;
  const subscribe = () => {
    if (subscriber) return;
    subscriber = opts.openSubscriber();
    subscriber.on('error', () => undefined);
    subscriber.on('message', (_ch, id: string) => {
      for (const listener of listeners) listener(id);
      if (waiters.has(id)) checkSoon(id);
    });
    void subscriber.subscribe(channel).catch(() => undefined);
  };

  // One re-read for the whole process; a tick that finds the previous read still running is skipped.
  let rechecking = false;
  const recheck = () => {
    if (rechecking || waiters.size === 0) return;
    rechecking = true;
    void check([...waiters.keys()])
      .catch(() => undefined)
      .finally(() => (rechecking = false));
  };

  // Watching side: the mark and the re-read live while this process has waiters.
  let renew: NodeJS.Timeout | undefined;
  let recheckTimer: NodeJS.Timeout | undefined;
  const mark = () => {
    if (redis.status === 'ready') void redis.set(markKey, '1', 'PX', WATCH_MARK_TTL_MS).catch(() => undefined);
  };
  const startWatching = () => {
    if (count++ > 0) return;
    mark();
    renew = setInterval(mark, WATCH_MARK_RENEW_MS).unref();
    recheckTimer = setInterval(recheck, recheckMs).unref();
  };
  const stopWatching = () => {
    if (--count > 0) return;
    clearInterval(renew);
    clearInterval(recheckTimer);
  };

  // Publishing side: what this process last read of the mark, and when.
  let watchedUntil = 0;
  let checkedAt = -Infinity;
  let reading: Promise<boolean> | undefined;
  const readMark = () =>
    (reading ??= redis
      .pttl(markKey)
      .then(
        (ttl) => {
          checkedAt = Date.now();
          watchedUntil = ttl > 0 ? checkedAt + ttl : 0;
          return ttl > 0;
        },
        // Unknown: publishing costs one message, not publishing could cost a waiter a second.
        () => true,
      )
      .finally(() => (reading = undefined)));

  return {
    publish(taskId) {
      if (redis.status !== 'ready') return;
      const send = () => void redis.publish(channel, taskId).catch(() => undefined);
      const now = Date.now();
      if (count > 0 || now < watchedUntil) send();
      else if (now - checkedAt >= WATCH_KNOWLEDGE_MS) void readMark().then((watched) => watched && send());
    },
    waitForChange(taskId, sinceSeq, timeoutMs, signal) {
      if (signal?.aborted) return Promise.resolve(false);
      subscribe();
      return new Promise<boolean>((resolve) => {
        const finish = (changed: boolean) => {
          const set = waiters.get(taskId);
          if (!set?.delete(waiter)) return;
          if (set.size === 0) waiters.delete(taskId);
          stopWatching();
          clearTimeout(deadline);
          signal?.removeEventListener('abort', onAbort);
          resolve(changed);
        };
        const waiter: Waiter = { sinceSeq, wake: () => finish(true) };
        const onAbort = () => finish(false);
        const deadline = setTimeout(() => finish(false), timeoutMs);
        startWatching();
        const set = waiters.get(taskId) ?? new Set<Waiter>();
        waiters.set(taskId, set.add(waiter));
        signal?.addEventListener('abort', onAbort);
        // A change committed before this waiter existed was published to nobody here: read once now.
        checkSoon(taskId);
      });
    },
    listenAll(listener) {
      subscribe();
      startWatching();
      listeners.add(listener);
      let removed = false;
      return () => {
        if (removed) return;
        removed = true;
        listeners.delete(listener);
        stopWatching();
      };
    },
    waiting: () => count,
    async close() {
      clearInterval(renew);
      clearInterval(recheckTimer);
      await subscriber?.quit().catch(() => subscriber?.disconnect());
    },
  };
}
