import { taskBody } from './config';
import { createClient, type CreateClient } from './feeder';
import type { Api, Pipeline } from './pipelines';
import type { Receiver } from './receiver';
import type { SimHandle } from './sim-protocol';

/** Every measuring phase starts the same way: empty receiver and simulator, a client over all APIs. */
export async function startPhase(pipeline: Pipeline, apis: Api[], sim: SimHandle, receiver: Receiver): Promise<CreateClient> {
  receiver.reset();
  await sim.reset();
  return createClient(
    apis.map((a) => a.url),
    pipeline.headers,
    taskBody(receiver.url),
  );
}
