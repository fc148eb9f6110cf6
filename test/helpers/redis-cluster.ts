import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { eventually } from './invariants';
import { freePort, startRedis, type Proc } from './processes';

const run = promisify(execFile);

export interface RedisCluster {
  /** Every node's port; each holds a share of the slots (no replicas). */
  ports: number[];
  /** A seed URL, as REDIS_URL names a cluster. */
  url: string;
  stop(): Promise<void>;
}

/**
 * A private Redis Cluster of `size` primaries on free ports, each in its own directory under a
 * temp dir (a node writes its cluster config there), joined with redis-cli and answering
 * `cluster_state:ok` on every node.
 */
export async function startRedisCluster(size = 3): Promise<RedisCluster> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kt-redis-cluster-'));
  const nodes: Proc[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.kill('SIGKILL')));
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ports: number[] = [];
    for (let i = 0; i < size; i++) ports.push(await freePort());
    for (const port of ports) {
      const nodeDir = path.join(dir, String(port));
      fs.mkdirSync(nodeDir);
      const args = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--dir', nodeDir];
      nodes.push(await startRedis(port, args));
    }
    const addresses = ports.map((p) => `127.0.0.1:${p}`);
    await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes']);
    for (const port of ports) {
      await eventually(
        `cluster_state:ok on port ${port}`,
        async () => /cluster_state:ok/.test((await run('redis-cli', ['-p', String(port), 'cluster', 'info'])).stdout),
        15_000,
      );
    }
    return { ports, url: `redis://127.0.0.1:${ports[0]}`, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
