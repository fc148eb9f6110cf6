import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import type { Db } from '../db/client';

/**
 * "Task X changed", across processes: the process that commits a change publishes on Redis; every
 * API process subscribes once and wakes its local waiters (long polls, SSE streams). Waiters also
 * re-read Postgres every second, so a lost message or a Redis outage only delays an answer.
 */
export interface TaskChanges {
  publish(taskId: string): void;
  /** Resolves true as soon as the task's event count passes `sinceSeq`, false after `timeoutMs`. */
  waitForChange(taskId: string, sinceSeq: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  close(): Promise<void>;
}

const DB_RECHECK_MS = 1000;

export function createTaskChanges(opts: { db: Db; publisher: Redis; redisUrl: string; prefix: string }): TaskChanges {
  const channel = `${opts.prefix}:task-changes`;
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

  const changedSince = async (taskId: string, sinceSeq: number) => {
    const t = await opts.db.task.findUnique({ where: { id: taskId }, select: { eventSeq: true } });
    return !t || t.eventSeq > sinceSeq;
  };

  return {
    publish(taskId) {
      if (opts.publisher.status === 'ready') void opts.publisher.publish(channel, taskId).catch(() => undefined);
    },
    async waitForChange(taskId, sinceSeq, timeoutMs, signal) {
      subscribe();
      if (await changedSince(taskId, sinceSeq)) return true;
      return new Promise<boolean>((resolve) => {
        let settled = false;
        const finish = (changed: boolean) => {
          if (settled) return;
          settled = true;
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
      local.removeAllListeners();
      await subscriber?.quit().catch(() => subscriber?.disconnect());
    },
  };
}
