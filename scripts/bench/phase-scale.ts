import { bench } from './config';
import { drain } from './feeder';
import { startPhase } from './phase-common';
import { serviceTaskSummary } from './infra';
import type { Api, Pipeline } from './pipelines';
import type { Receiver } from './receiver';
import type { SimHandle } from './sim-protocol';
import { progress } from './stats';

export interface ScaleResult {
  tasks: number;
  createErrors: number;
  /** Tasks per second from the first create to the last `succeed` webhook (informational). */
  perSecond: number;
  upstreamCreated: number;
  distinctExternalIds: number;
  /** Upstream tasks per worker process (each worker's callback URL names its own API). */
  perWorker: Record<string, number>;
  byState: Record<string, number>;
  submitAttempts: number;
  processingWebhooks: number;
  succeedWebhooks: number;
  repeats: { sameStatus: number; sameWebhookId: number };
  unfinished: number;
  /** Every check of "no double processing" held. */
  ok: boolean;
  failures: string[];
}

/**
 * Two API processes and two worker processes on one Postgres and one Redis. Creates alternate
 * between the APIs; worker i sends the upstream API i's callback URL, so the simulator tells which
 * worker submitted each task. No double processing: exactly one upstream task per task, one submit
 * attempt each, every task terminal, one webhook per status change.
 */
export async function runScale(pipeline: Pipeline, apis: Api[], sim: SimHandle, receiver: Receiver): Promise<ScaleResult> {
  const client = await startPhase(pipeline, apis, sim, receiver);
  progress(`${pipeline.kind}: scale-out, ${bench.scaleTasks} tasks through ${apis.length} APIs and ${apis.length} workers`);
  const ids: string[] = [];
  let issued = 0;
  const start = Date.now();
  await Promise.all(
    Array.from({ length: bench.feederConcurrency }, async () => {
      while (issued < bench.scaleTasks) {
        issued++;
        const id = await client.create();
        if (id) ids.push(id);
      }
    }),
  );
  client.close();
  const unfinished = await drain(ids, (id) => receiver.hasSucceeded(id), bench.drainTimeoutMs);
  const seconds = (Date.now() - start) / 1000;
  // Late duplicates (a job run twice) would show up after the last success: give them a moment.
  await new Promise((r) => setTimeout(r, 2000));

  const stats = await sim.stats();
  const summary = await serviceTaskSummary(pipeline.dbUrl);
  const perWorker: Record<string, number> = {};
  apis.forEach((api, i) => (perWorker[`worker-${i + 1}`] = stats.byCallbackOrigin[api.url] ?? 0));
  const processingWebhooks = ids.filter((id) => receiver.arrivals.has(`${id}|processing`)).length;
  const succeedWebhooks = ids.filter((id) => receiver.arrivals.has(`${id}|succeed`)).length;
  const repeats = receiver.repeats();

  const failures: string[] = [];
  const expect = (cond: boolean, what: string) => void (cond || failures.push(what));
  expect(client.errors() === 0, `${client.errors()} creates refused`);
  expect(stats.created === ids.length, `upstream tasks ${stats.created} != tasks ${ids.length}`);
  expect(stats.distinctExternalIds === ids.length, `distinct external ids ${stats.distinctExternalIds} != tasks ${ids.length}`);
  expect(summary.byState.succeed === ids.length, `succeeded ${summary.byState.succeed ?? 0} != tasks ${ids.length}`);
  expect(summary.submitAttempts === ids.length, `submit attempts ${summary.submitAttempts} != tasks ${ids.length}`);
  expect(processingWebhooks === ids.length && succeedWebhooks === ids.length, 'a webhook is missing');
  expect(repeats.sameStatus === 0 && repeats.sameWebhookId === 0, `repeated webhooks: ${JSON.stringify(repeats)}`);
  expect(
    Object.values(perWorker).every((n) => n > 0),
    `a worker took no task: ${JSON.stringify(perWorker)}`,
  );

  const result: ScaleResult = {
    tasks: ids.length,
    createErrors: client.errors(),
    perSecond: ids.length / seconds,
    upstreamCreated: stats.created,
    distinctExternalIds: stats.distinctExternalIds,
    perWorker,
    byState: summary.byState,
    submitAttempts: summary.submitAttempts,
    processingWebhooks,
    succeedWebhooks,
    repeats,
    unfinished,
    ok: failures.length === 0,
    failures,
  };
  progress(`${pipeline.kind}: scale-out ${result.ok ? 'OK' : `FAILED: ${failures.join('; ')}`} (${JSON.stringify(perWorker)})`);
  return result;
}
