import { Router } from 'express';
import type { RedisClient } from '../lib/redis-client';
import type { Db } from '../db/client';
import { workersAlive } from '../observability/heartbeat';
import { accountsInRotation } from '../accounts/account-repository';

export interface HealthDeps {
  db: Db;
  redis: RedisClient;
  queuePrefix: string;
}

const CHECK_TIMEOUT_MS = 2000;

async function check(fn: () => Promise<unknown>): Promise<'ok' | 'down'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([fn(), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), CHECK_TIMEOUT_MS)))]);
    return 'ok';
  } catch {
    return 'down';
  } finally {
    clearTimeout(timer);
  }
}

export function healthRouter(deps: HealthDeps): Router {
  const r = Router();
  r.get('/healthz', (_req, res) => {
    res.json({ code: 0, message: 'SUCCEED', request_id: res.locals.requestId, data: { status: 'alive' } });
  });
  r.get('/readyz', async (_req, res) => {
    const redisUp = async () => {
      if (deps.redis.status !== 'ready') throw new Error('not connected');
      return deps.redis.ping();
    };
    // Ready means tasks will actually move: some worker process stamped its heartbeat lately.
    const workersUp = async () => {
      if (deps.redis.status !== 'ready' || (await workersAlive(deps.redis, deps.queuePrefix)) === 0) throw new Error('no heartbeat');
    };
    // And some upstream account can take work (an account disabled or out of rotation is not
    // enough to stop being ready while another one serves). Named in the answer only when none can.
    const accountsUp = async () => {
      if ((await accountsInRotation(deps.db)) === 0) throw new Error('no account in rotation');
    };
    const [postgres, redis, workers, accounts] = await Promise.all([
      check(() => deps.db.$queryRaw`SELECT 1`),
      check(redisUp),
      check(workersUp),
      check(accountsUp),
    ]);
    const ready = postgres === 'ok' && redis === 'ok' && workers === 'ok' && accounts === 'ok';
    const noAccount = postgres === 'ok' && accounts !== 'ok';
    res.status(ready ? 200 : 503).json({
      code: ready ? 0 : 5001,
      message: ready ? 'SUCCEED' : 'not ready',
      request_id: res.locals.requestId,
      data: { postgres, redis, workers, ...(noAccount ? { accounts: 'down' } : {}) },
    });
  });
  return r;
}
