import os from 'node:os';
import type { Redis } from 'ioredis';
import { bareEnv, bench, serviceEnv } from './config';
import { cleanPrefix, truncateBare, truncateService, waitIdle } from './infra';
import { freePort } from '../lib/local-services';
import { startNode, waitUntil, type Child } from './procs';

/**
 * The two systems under test behind one interface, so every phase runs the same code against
 * both: the service (`src/main.ts`, ROLE=api / ROLE=worker) and the bare pipeline (bare.ts).
 */
export interface Api {
  child: Child;
  url: string;
}

export interface Pipeline {
  /** `service` or `bare`; a service pipeline on another database is named after it (`--history`). */
  name: string;
  /** Headers every create carries (the service's tenant key; the bare API checks nothing). */
  headers: Record<string, string>;
  dbUrl: string;
  prefix: string;
  startApi(): Promise<Api>;
  /** A worker process whose upstream callbacks go to `api`. */
  startWorker(api: Api): Promise<Child>;
  /** Stops processes of this pipeline: at once, or (profiling) letting them write their profile on exit. */
  stop(children: Child[]): Promise<void>;
  /** Empties the pipeline's tables and Redis keys between phases. */
  reset(): Promise<void>;
}

export interface PipelineOptions {
  simUrl: string;
  redis: Redis;
  /** Profile mode: every process under test runs with --cpu-prof and writes its profile here. */
  profileDir?: string;
}

interface Spec {
  name: string;
  headers: Record<string, string>;
  dbUrl: string;
  prefix: string;
  truncate(): Promise<unknown>;
  /** The script, its arguments and environment for a role. */
  command(role: 'api' | 'worker', port: number, publicBaseUrl: string): { script: string; args: string[]; env: Record<string, string> };
  workerReady(child: Child): Promise<boolean> | boolean;
}

function pipeline(o: PipelineOptions, spec: Spec): Pipeline {
  const nodeFlags = o.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${o.profileDir}`] : [];
  const start = (role: 'api' | 'worker', port: number, url: string) => {
    const c = spec.command(role, port, url);
    return startNode(`${spec.name}-${role}`, c.script, c.args, c.env, { nodeFlags });
  };
  return {
    name: spec.name,
    headers: spec.headers,
    dbUrl: spec.dbUrl,
    prefix: spec.prefix,
    async startApi() {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const child = start('api', port, url);
      await waitUntil(child, 'healthy /healthz', async () => {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        return res.ok;
      });
      return { child, url };
    },
    async startWorker(api) {
      const child = start('worker', 0, api.url);
      await waitUntil(child, 'worker ready', () => spec.workerReady(child));
      return child;
    },
    // Both pipelines exit within a few seconds of SIGTERM, and Node writes a profile on exit.
    stop: async (children) => void (await Promise.all(children.map((c) => c.stop(o.profileDir ? 15_000 : 0)))),
    async reset() {
      await waitIdle(spec.dbUrl);
      await spec.truncate();
      await cleanPrefix(o.redis, spec.prefix);
    },
  };
}

/** The service on the benchmark's database, or on another one (`on`: its name, URL and how to empty it between windows). */
export function servicePipeline(
  apiKey: string,
  o: PipelineOptions,
  on: { name: string; dbUrl: string; truncate(): Promise<unknown> } = {
    name: 'service',
    dbUrl: bench.serviceDbUrl,
    truncate: truncateService,
  },
): Pipeline {
  return pipeline(o, {
    name: on.name,
    headers: { authorization: `Bearer ${apiKey}` },
    dbUrl: on.dbUrl,
    prefix: bench.servicePrefix,
    truncate: on.truncate,
    command: (role, port, publicBaseUrl) => ({
      script: 'src/main.ts',
      args: [],
      env: { ...serviceEnv({ role, port, publicBaseUrl, simUrl: o.simUrl }), DATABASE_URL: on.dbUrl },
    }),
    // "workers started" is an info line and the processes log at warn: the heartbeat says it instead.
    workerReady: async (child) =>
      (await o.redis.zscore(`${bench.servicePrefix}:workers:heartbeat`, `${os.hostname()}:${child.pid}`)) !== null,
  });
}

export function barePipeline(o: PipelineOptions): Pipeline {
  return pipeline(o, {
    name: 'bare',
    headers: {},
    dbUrl: bench.bareDbUrl,
    prefix: bench.barePrefix,
    truncate: truncateBare,
    command: (role, port, publicBaseUrl) => ({
      script: 'scripts/bench/bare.ts',
      args: [role],
      env: bareEnv({ port, publicBaseUrl, simUrl: o.simUrl }),
    }),
    workerReady: (child) => child.output().includes('bare worker ready'),
  });
}
