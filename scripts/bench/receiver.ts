import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The client's webhook receiver, in the driver. It answers 204 at once and only records what the
 * measurements need: when each (task, status) first arrived, how many repeats, and how many tasks
 * have reached `succeed` (the end of the pipeline, for both the service and the bare one).
 * Signatures are not verified: that is the client's CPU, not the service's.
 */
export interface Receiver {
  url: string;
  /** First arrival (ms since epoch) of each `${task_id}|${task_status}`. */
  arrivals: Map<string, number>;
  /** Arrivals of a (task, status) already seen, and of a webhook-id already seen. */
  repeats(): { sameStatus: number; sameWebhookId: number };
  /** Distinct tasks whose `succeed` webhook arrived. */
  succeeded(): number;
  hasSucceeded(taskId: string): boolean;
  reset(): void;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const arrivals = new Map<string, number>();
  const webhookIds = new Set<string>();
  const done = new Set<string>();
  let sameStatus = 0;
  let sameWebhookId = 0;

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = Date.now();
      res.writeHead(204).end();
      let body: { task_id?: string; task_status?: string };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return;
      }
      const key = `${body.task_id}|${body.task_status}`;
      if (arrivals.has(key)) sameStatus++;
      else arrivals.set(key, at);
      const webhookId = req.headers['webhook-id'];
      if (typeof webhookId === 'string') {
        if (webhookIds.has(webhookId)) sameWebhookId++;
        webhookIds.add(webhookId);
      }
      if (body.task_status === 'succeed' && body.task_id) done.add(body.task_id);
    });
  });
  // Many short-lived connections from the pipelines' webhook senders.
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));

  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    arrivals,
    repeats: () => ({ sameStatus, sameWebhookId }),
    succeeded: () => done.size,
    hasSucceeded: (id) => done.has(id),
    reset() {
      arrivals.clear();
      webhookIds.clear();
      done.clear();
      sameStatus = 0;
      sameWebhookId = 0;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
