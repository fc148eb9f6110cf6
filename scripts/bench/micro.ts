/**
 * `node --import tsx scripts/bench/micro.ts`: the CPU cost, in this process, of single operations
 * the service repeats for every task, next to the plain driver call doing the same I/O. One call at
 * a time, so the figures are CPU per call, not throughput. Uses the service's own functions
 * (createDb, insertTask, ensureJob) unchanged, on the benchmark's database and Redis prefix.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Pool } from 'pg';
import { createDb } from '../../src/db/client';
import { ensureJob, submitJobOptions } from '../../src/queues/queues';
import { insertTask, type NewTask } from '../../src/tasks/task-repository';
import { bench } from './config';
import { cleanPrefix, clearServiceDb, prepareServiceDb, redisClient } from './infra';
import { textTable } from './stats';

const N = Number(process.env.BENCH_MICRO_N ?? 1000);
const PREFIX = `${bench.servicePrefix}-micro`;

/** CPU (user + system) and wall time per call of `op`, after a warm-up. */
async function measure(op: (i: number) => Promise<unknown>): Promise<{ cpuUs: number; wallUs: number }> {
  for (let i = 0; i < 100; i++) await op(i);
  const cpu = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await op(i);
  const wall = Number(process.hrtime.bigint() - t0) / 1000;
  const used = process.cpuUsage(cpu);
  return { cpuUs: (used.user + used.system) / N, wallUs: wall / N };
}

async function main(): Promise<void> {
  await prepareServiceDb();
  const db = createDb(bench.serviceDbUrl);
  const pool = new Pool({ connectionString: bench.serviceDbUrl, max: 10 });
  const tenantId = (await pool.query('SELECT id FROM tenants LIMIT 1')).rows[0].id as string;
  const redis = redisClient();
  const queue = new Queue('task.submit', { connection: redis, prefix: PREFIX });
  const settings = { prefix: PREFIX, submitAttempts: 8, submitBackoffMs: 2000 };
  const newTask = (): NewTask => ({
    id: randomUUID(),
    tenantId,
    request: { model_name: 'kling-v3', prompt: 'micro', n: 1 },
    modelName: 'kling-v3',
    kind: 'image-generation',
    pool: 'image',
    slotCost: 1,
    callbackToken: randomBytes(24).toString('base64url'),
  });
  const ids: string[] = [];
  for (let i = 0; i < 20; i++) ids.push((await insertTask(db, newTask())).id);
  // Twenty waiting jobs, as requeueSubmits finds them under a backlog.
  for (const id of ids) await queue.add('submit', { taskId: id }, submitJobOptions(settings, id));

  const rows: string[][] = [];
  const row = async (name: string, op: (i: number) => Promise<unknown>) => {
    const r = await measure(op);
    rows.push([name, r.cpuUs.toFixed(0), r.wallUs.toFixed(0)]);
  };
  await row('pg: SELECT task by id', (i) => pool.query('SELECT * FROM tasks WHERE id = $1', [ids[i % 20]]));
  await row('Prisma: task.findUnique', (i) => db.task.findUnique({ where: { id: ids[i % 20] } }));
  await row('Prisma: $queryRaw SELECT task by id', (i) => db.$queryRaw`SELECT * FROM tasks WHERE id = ${ids[i % 20]}`);
  await row('Prisma: unfinished count (create path)', () =>
    db.task.count({ where: { tenantId, state: { in: ['queued', 'submitted', 'processing'] } } }),
  );
  await row('pg: INSERT task (one statement)', () =>
    pool.query(
      'INSERT INTO tasks (id, tenant_id, request, model_name, n, callback_token, updated_at) VALUES ($1, $2, $3, $4, 1, $5, now())',
      [randomUUID(), tenantId, { prompt: 'micro' }, 'kling-v3', 'token'],
    ),
  );
  await row('Prisma: insertTask (task + event, nested create)', () => insertTask(db, newTask()));
  await row('BullMQ: queue.add (new job)', () => queue.add('submit', { taskId: randomUUID() }, { removeOnComplete: true }));
  await row('BullMQ: ensureJob on a waiting job (requeueSubmits, sweep)', (i) =>
    ensureJob(queue, 'submit', { taskId: ids[i % 20] }, submitJobOptions(settings, ids[i % 20])),
  );

  console.log(`CPU and wall time per call in the calling process, ${N} sequential calls each\n`);
  console.log(textTable(['operation', 'CPU us/call', 'wall us/call'], rows));
  await queue.close();
  await cleanPrefix(redis, PREFIX);
  redis.disconnect();
  await pool.end();
  await db.$disconnect();
  await clearServiceDb();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
