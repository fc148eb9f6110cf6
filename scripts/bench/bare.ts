/**
 * The bare pipeline the service is compared with: the same I/O (Postgres, BullMQ on Redis, the
 * upstream, the client's webhook) with none of the service's guarantees: no auth, no validation,
 * no rate limit, no state machine, no events, no outbox, no retries, no slots.
 *   `bare.ts api`: at each of BARE_PATHS (the kinds' Kling paths), one INSERT + one queue.add per
 *     create; per upstream callback, one UPDATE, then a direct POST to the task's callback_url
 *     (fire and forget: without it the bare pipeline would do less network I/O than the service).
 *     With BARE_COPY_DIR (the service copies results: RESULT_URLS=mirror), a `succeed` callback
 *     first downloads each output into a file there, as the service stores its copies; with
 *     BARE_COPY_SYNC=1 as durably as the service's directory store does (bytes synced, renamed,
 *     the directory synced).
 *   `bare.ts worker`: one SELECT, the upstream POST at the task's path, one UPDATE.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Queue, Worker, type Job } from 'bullmq';
import express from 'express';
import { Redis } from 'ioredis';
import { Pool } from 'pg';
import { request } from 'undici';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`bare pipeline: ${name} is required`);
  return value;
};

const QUEUE = 'submit';
/** The service's own defaults: a Prisma pool of 10 per process, 20 jobs at once per worker process. */
const POOL_SIZE = 10;
const CONCURRENCY = 20;

const pool = new Pool({ connectionString: env('BARE_DATABASE_URL'), max: POOL_SIZE });
const redisUrl = env('REDIS_URL');
const prefix = env('BARE_PREFIX');

function startApi(): void {
  const queue = new Queue(QUEUE, { connection: new Redis(redisUrl, { maxRetriesPerRequest: null }), prefix });
  const webhookAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const app = express();
  app.disable('x-powered-by');

  app.get('/healthz', (_req, res) => void res.json({ code: 0 }));

  app.post(env('BARE_PATHS').split(','), express.json({ limit: '15mb' }), async (req, res) => {
    const id = randomUUID();
    const body = req.body as Record<string, unknown>;
    await pool.query('INSERT INTO bare_tasks (id, path, body, callback_url) VALUES ($1, $2, $3, $4)', [
      id,
      req.path,
      body,
      body.callback_url ?? null,
    ]);
    // Completed jobs are deleted: the bare pipeline keeps nothing it does not need.
    await queue.add('submit', { id }, { removeOnComplete: true, removeOnFail: true });
    res.json({ code: 0, message: 'SUCCEED', data: { task_id: id, task_status: 'submitted' } });
  });

  app.post('/callbacks/:id', express.json({ limit: '1mb' }), async (req, res) => {
    const id = String(req.params.id);
    const body = req.body as { task_status?: unknown; task_result?: { images?: { url: string }[]; videos?: { url: string }[] } };
    const status = String(body.task_status);
    if (copyDir && status === 'succeed') {
      res.json({ code: 0 });
      await copyOutputs(id, [...(body.task_result?.images ?? []), ...(body.task_result?.videos ?? [])]).catch((err: Error) =>
        console.error(`bare copy failed: ${err.message}`),
      );
    }
    const r = await pool.query<{ callback_url: string | null }>(
      'UPDATE bare_tasks SET state = $2, updated_at = now() WHERE id = $1 RETURNING callback_url',
      [id, status],
    );
    if (!res.headersSent) res.json({ code: 0 });
    const url = r.rows[0]?.callback_url;
    if (url) notify(webhookAgent, url, JSON.stringify({ task_id: id, task_status: status }));
  });

  const server = app.listen(Number(env('PORT')), '127.0.0.1', () => console.log('bare api listening'));
  onStop(async () => {
    server.close();
    await queue.close();
  });
}

const copyDir = process.env.BARE_COPY_DIR;
if (copyDir) fs.mkdirSync(copyDir, { recursive: true });

const syncCopies = process.env.BARE_COPY_SYNC === '1';

/**
 * Each output streamed into a file of its own: the download and the write of the service's copy,
 * without its checks or records. With BARE_COPY_SYNC=1 the file survives a machine crash once
 * written, as the service's directory store makes its objects: its bytes synced before its name,
 * its name synced after.
 */
async function copyOutputs(id: string, outputs: { url: string }[]): Promise<void> {
  for (const [i, { url }] of outputs.entries()) {
    const answer = await request(url);
    const file = path.join(copyDir!, `${id}-${i}`);
    if (!syncCopies) {
      await pipeline(answer.body, fs.createWriteStream(file));
      continue;
    }
    await pipeline(answer.body, fs.createWriteStream(`${file}.part`, { flush: true }));
    await fs.promises.rename(`${file}.part`, file);
    const dir = await fs.promises.open(copyDir!, 'r');
    await dir.sync().finally(() => dir.close());
  }
}

/** One attempt, no retry, no record: exactly what the bare pipeline promises. */
function notify(agent: http.Agent, url: string, body: string): void {
  const req = http.request(url, {
    method: 'POST',
    agent,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  });
  req.on('response', (res) => res.resume());
  req.on('error', () => undefined);
  req.end(body);
}

function startWorker(): void {
  const upstream = env('KLING_BASE_URL');
  const auth = `Bearer ${env('KLING_API_KEY')}`;
  const publicBaseUrl = env('PUBLIC_BASE_URL');
  const process_ = async (job: Job<{ id: string }>) => {
    const { id } = job.data;
    const { rows } = await pool.query<{ path: string; body: Record<string, unknown> }>('SELECT path, body FROM bare_tasks WHERE id = $1', [
      id,
    ]);
    if (!rows[0]) return;
    // The service's HTTP client for the upstream (undici's request; fetch costs more CPU per call).
    const answer = await request(`${upstream}${rows[0].path}`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/json', accept: 'application/json' },
      // Same rewrite as the service: our callback URL and our id go upstream, never the client's.
      body: JSON.stringify({ ...rows[0].body, callback_url: `${publicBaseUrl}/callbacks/${id}`, external_task_id: id }),
    });
    const json = (await answer.body.json()) as { code: number; message?: string; data?: { task_id: string } };
    if (json.code !== 0 || !json.data) throw new Error(`upstream refused: ${json.code} ${json.message}`);
    // The upstream calls back at once, so a callback may have moved the task on already: never move it back.
    await pool.query(
      "UPDATE bare_tasks SET state = CASE state WHEN 'queued' THEN 'submitted' ELSE state END, upstream_id = $2 WHERE id = $1",
      [id, json.data.task_id],
    );
  };
  const worker = new Worker(QUEUE, process_, {
    connection: new Redis(redisUrl, { maxRetriesPerRequest: null }),
    prefix,
    concurrency: CONCURRENCY,
  });
  worker.on('error', (err) => console.error(`bare worker error: ${err.message}`));
  worker.on('failed', (_job, err) => console.error(`bare job failed: ${err.message}`));
  void worker.waitUntilReady().then(() => console.log('bare worker ready'));
  onStop(() => worker.close());
}

function onStop(close: () => Promise<void>): void {
  const stop = () =>
    void close()
      .then(() => pool.end())
      .finally(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

const role = process.argv[2];
if (role === 'api') startApi();
else if (role === 'worker') startWorker();
else {
  console.error('usage: bare.ts api|worker');
  process.exit(2);
}
