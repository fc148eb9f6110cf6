import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import type { Random } from './random';

/** The first arrival of one webhook-id. */
export interface Arrival {
  webhookId: string;
  taskId: string;
  status: string;
}

export interface WebhookReceiver {
  url: string;
  /** First arrivals, in arrival order (a receiver deduplicating on webhook-id processes exactly these). */
  arrivals: Arrival[];
  /** Arrivals of a webhook-id already processed (retries whose answer was lost, redeliveries). */
  repeats(): number;
  /** Requests whose signature did not verify. */
  badSignatures(): number;
  /** Requests answered 503 on purpose. */
  refusedOnPurpose(): number;
  close(): Promise<void>;
}

/**
 * The client's webhook receiver: verifies the Standard Webhooks signature with the independent
 * `standardwebhooks` package, deduplicates on webhook-id, and answers a share of requests 503 so
 * that retries happen under every fault too.
 */
export async function startWebhookReceiver(secret: string, random: Random, failShare: number): Promise<WebhookReceiver> {
  const verifier = new Webhook(secret);
  const arrivals: Arrival[] = [];
  const seen = new Set<string>();
  let repeats = 0;
  let bad = 0;
  let refused = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (random.chance(failShare)) {
        refused++;
        return void res.writeHead(503).end();
      }
      let task: { task_id?: string; task_status?: string };
      try {
        task = verifier.verify(Buffer.concat(chunks).toString('utf8'), req.headers as Record<string, string>) as typeof task;
      } catch {
        bad++;
        return void res.writeHead(400).end();
      }
      const webhookId = String(req.headers['webhook-id']);
      if (seen.has(webhookId)) repeats++;
      else {
        seen.add(webhookId);
        arrivals.push({ webhookId, taskId: String(task.task_id), status: String(task.task_status) });
      }
      res.writeHead(204).end();
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    arrivals,
    repeats: () => repeats,
    badSignatures: () => bad,
    refusedOnPurpose: () => refused,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
