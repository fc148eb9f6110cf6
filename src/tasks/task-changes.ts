import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import type { Db } from '../db/client';

/**
 * "Task X changed", across processes: the process that commits a change publishes on Redis; every
 * API process subscribes once and wakes its local waiters (long polls, SSE streams). Waiters also
 * re-read Postgres every second, so a lost message or a Redis outage only delays an answer.
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
  close(): Promise<void>;
}

const DB_RECHECK_MS = 1000;
/** Life of the "somebody watches" mark; its holder renews it while it has waiters. */
const WATCH_MARK_TTL_MS = 5000;
const WATCH_MARK_RENEW_MS = 2000;
/** How long a publisher trusts what it last read of the mark. */
const WATCH_KNOWLEDGE_MS = DB_RECHECK_MS;

export function createTaskChanges(opts: { db: Db; publisher: Redis; redisUrl: string; prefix: string }): TaskChanges {
  const channel = `${opts.prefix}:task-changes`;
  const markKey = `${opts.prefix}:task-watchers`;
  const redis = opts.publisher;
  const local = new EventEmitter();
  local.setMaxListeners(0);
  let subscriber: Redis | undefined;
  const subscribe = () => {
    if (subscriber) return;
    subscriber = new Redis(opts.redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
    subscriber.on('error', () => undefined);
    subscriber.on('message', (_ch, id: string) => local.emit(id));
    void subscriber.subscribe(channel).catch(() => undefined);
  };

  // Watching side: the mark lives while this process has waiters.
  let waiters = 0;
  let renew: NodeJS.Timeout | undefined;
  const mark = () => {
    if (redis.status === 'ready') void redis.set(markKey, '1', 'PX', WATCH_MARK_TTL_MS).catch(() => undefined);
  };
  const startWatching = () => {
    if (waiters++ > 0) return;
    mark();
    renew = setInterval(mark, WATCH_MARK_RENEW_MS).unref();
  };
  const stopWatching = () => {
    if (--waiters === 0) clearInterval(renew);
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

  const changedSince = async (taskId: string, sinceSeq: number) => {
    const t = await opts.db.task.findUnique({ where: { id: taskId }, select: { eventSeq: true } });
    return !t || t.eventSeq > sinceSeq;
  };

  return {
    publish(taskId) {
      if (redis.status !== 'ready') return;
      const send = () => void redis.publish(channel, taskId).catch(() => undefined);
      const now = Date.now();
      if (waiters > 0 || now < watchedUntil) send();
      else if (now - checkedAt >= WATCH_KNOWLEDGE_MS) void readMark().then((watched) => watched && send());
    },
    async waitForChange(taskId, sinceSeq, timeoutMs, signal) {
      subscribe();
      startWatching();
      let waiting = false;
      try {
        if (await changedSince(taskId, sinceSeq)) return true;
        waiting = true;
      } finally {
        if (!waiting) stopWatching();
      }
      return new Promise<boolean>((resolve) => {
        let settled = false;
        const finish = (changed: boolean) => {
          if (settled) return;
          settled = true;
          stopWatching();
          clearTimeout(deadline);
          clearInterval(recheck);
          local.off(taskId, onMessage);
          signal?.removeEventListener('abort', onAbort);
          resolve(changed);
        };
        const check = () =>
          void changedSince(taskId, sinceSeq).then(
            (c) => c && finish(true),
            () => undefined,
          );
        const onMessage = () => check();
        const onAbort = () => finish(false);
        local.on(taskId, onMessage);
        signal?.addEventListener('abort', onAbort);
        const recheck = setInterval(check, DB_RECHECK_MS);
        const deadline = setTimeout(() => finish(false), timeoutMs);
      });
    },
    async close() {
      clearInterval(renew);
      local.removeAllListeners();
      await subscriber?.quit().catch(() => subscriber?.disconnect());
    },
  };
}
