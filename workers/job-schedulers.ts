import type { Logger } from '../src/logger';
import type { Catalogue, WorkerSettings } from '../src/queues/catalogue';
import type { QueuesOf } from '../src/queues/queues';

/**
 * Keeps a BullMQ job scheduler for every scheduled job of the catalogue. Schedulers are upserted by
 * id, so every worker process may declare them and there is still one job per interval for the
 * deployment. Retried until Redis answers, and declared again after every reconnect and every
 * minute: a Redis that restarted empty has forgotten them.
 */
export function keepJobsScheduled<C extends Catalogue>(queues: QueuesOf<C>, settings: WorkerSettings, log: Logger): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const attempt = () => {
    declareSchedulers(queues, settings).catch((err: Error) => {
      log.warn({ err: err.message }, 'could not declare the job schedulers yet; retrying');
      clearTimeout(timer);
      if (!stopped) timer = setTimeout(attempt, 5000);
    });
  };
  const onReady = () => attempt();
  queues.redis.on('ready', onReady);
  const refresh = setInterval(attempt, 60_000);
  attempt();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      clearInterval(refresh);
      queues.redis.off('ready', onReady);
    },
  };
}

async function declareSchedulers<C extends Catalogue>(queues: QueuesOf<C>, settings: WorkerSettings): Promise<void> {
  const declarations = Object.entries(queues.catalogue).map(async ([key, def]) => {
    const queue = queues[key];
    const scheduled = Object.entries(def.jobs).flatMap(([name, job]) => (job.every ? [{ name, every: job.every(settings) }] : []));
    await Promise.all(
      scheduled.map(({ name, every }) =>
        queue.upsertJobScheduler(name, { every }, { name, data: {}, opts: def.jobOptions(queues.settings) }),
      ),
    );
    // A scheduler the catalogue no longer names (a job renamed or split) would produce jobs nobody handles.
    const named = new Set(scheduled.map((s) => s.name));
    for (const s of await queue.getJobSchedulers()) if (!named.has(s.key)) await queue.removeJobScheduler(s.key);
  });
  await Promise.all(declarations);
}
