import os from 'node:os';
import type { Redis } from 'ioredis';
import { bareEnv, bench, serviceEnv } from './config';
import { cleanPrefix, truncateBare, truncateService, waitIdle } from './infra';
import { freePort, httpOk, startNode, waitUntil, type Child } from './procs';

/**
 * The two systems under test behind one interface, so every phase runs the same code against
 * both: the service (`src/main.ts`, ROLE=api / ROLE=worker) and the bare pipeline (bare.ts).
 */
export interface Api {
  child: Child;
  url: string;
}

export interface Pipeline {
  kind: 'service' | 'bare';
  /** Headers every create carries (the service's tenant key; the bare API checks nothing). */
  headers: Record<string, string>;
  dbUrl: string;
  prefix: string;
  startApi(name: string): Promise<Api>;
  /** A worker process whose upstream callbacks go to `api`. */
  startWorker(name: string, api: Api): Promise<Child>;
  /** Empties the pipeline's tables and Redis keys between phases. */
  reset(): Promise<void>;
}

export interface PipelineOptions {
  simUrl: string;
  redis: Redis;
  /** Node flags for the processes under test (--cpu-prof in profile mode). */
  nodeFlags?: string[];
  serviceDbUrl?: string;
  bareDbUrl?: string;
  redisUrl?: string;
}

const STARTUP_MS = 60_000;

async function startApiProcess(
  name: string,
  script: string,
  args: string[],
  env: (port: number, url: string) => Record<string, string>,
  nodeFlags?: string[],
): Promise<Api> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = startNode(name, script, args, env(port, url), { nodeFlags });
  await waitUntil(child, 'healthy /healthz', () => httpOk(`${url}/healthz`), STARTUP_MS);
  return { child, url };
}

export function servicePipeline(apiKey: string, o: PipelineOptions): Pipeline {
  const dbUrl = o.serviceDbUrl ?? bench.serviceDbUrl;
  const base = { simUrl: o.simUrl, dbUrl, redisUrl: o.redisUrl };
  return {
    kind: 'service',
    headers: { authorization: `Bearer ${apiKey}` },
    dbUrl,
    prefix: bench.servicePrefix,
    startApi: (name) =>
      startApiProcess(name, 'src/main.ts', [], (port, url) => serviceEnv({ ...base, role: 'api', port, publicBaseUrl: url }), o.nodeFlags),
    async startWorker(name, api) {
      const child = startNode(name, 'src/main.ts', [], serviceEnv({ ...base, role: 'worker', port: 0, publicBaseUrl: api.url }), {
        nodeFlags: o.nodeFlags,
      });
      // "workers started" is an info line and the processes log at warn: the heartbeat says it instead.
      const member = `${os.hostname()}:${child.pid}`;
      await waitUntil(
        child,
        'worker heartbeat',
        async () => (await o.redis.zscore(`${bench.servicePrefix}:workers:heartbeat`, member)) !== null,
        STARTUP_MS,
      );
      return child;
    },
    async reset() {
      await waitIdle(dbUrl);
      await truncateService(dbUrl);
      await cleanPrefix(o.redis, bench.servicePrefix);
    },
  };
}

export function barePipeline(o: PipelineOptions): Pipeline {
  const dbUrl = o.bareDbUrl ?? bench.bareDbUrl;
  const base = { simUrl: o.simUrl, dbUrl, redisUrl: o.redisUrl };
  return {
    kind: 'bare',
    headers: {},
    dbUrl,
    prefix: bench.barePrefix,
    startApi: (name) =>
      startApiProcess(name, 'scripts/bench/bare.ts', ['api'], (port, url) => bareEnv({ ...base, port, publicBaseUrl: url }), o.nodeFlags),
    async startWorker(name, api) {
      const child = startNode(name, 'scripts/bench/bare.ts', ['worker'], bareEnv({ ...base, port: 0, publicBaseUrl: api.url }), {
        nodeFlags: o.nodeFlags,
      });
      await waitUntil(child, 'worker ready', () => child.output().includes('bare worker ready'), STARTUP_MS);
      return child;
    },
    async reset() {
      await waitIdle(dbUrl);
      await truncateBare(dbUrl);
      await cleanPrefix(o.redis, bench.barePrefix);
    },
  };
}
