import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

export interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  json: Record<string, unknown>;
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Wait this long before answering (to provoke a timeout). */
  delayMs?: number;
}

export interface Receiver {
  url: string;
  received: Received[];
  /** Decides each answer; default 200. Gets the request and how many came before it. */
  reply: (r: Received, index: number) => Reply;
  /** Resolves once `n` requests have arrived (bounded). */
  waitFor(n: number, timeoutMs?: number): Promise<Received[]>;
  close(): Promise<void>;
}

export interface ReceiverOptions {
  /** Serve HTTPS with this key and certificate (PEM) instead of plain HTTP. */
  tls?: { key: string; cert: string };
  /** The address to listen on (an IP address; default 127.0.0.1). */
  host?: string;
}

/** A client's webhook receiver: a real HTTP(S) server on `host`, port 0. */
export async function startReceiver(opts: ReceiverOptions = {}): Promise<Receiver> {
  const host = opts.host ?? '127.0.0.1';
  const timers = new Set<NodeJS.Timeout>();
  const receiver: Receiver = {
    url: '',
    received: [],
    reply: () => ({ status: 200, body: 'ok' }),
    async waitFor(n, timeoutMs = 15_000) {
      const until = Date.now() + timeoutMs;
      while (receiver.received.length < n) {
        if (Date.now() > until) throw new Error(`receiver got ${receiver.received.length} of ${n} requests`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return receiver.received;
    },
    close: async () => {
      timers.forEach(clearTimeout);
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
  const handle: http.RequestListener = (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(body);
      } catch {
        /* kept as text */
      }
      const r: Received = { headers: req.headers, body, json };
      const reply = receiver.reply(r, receiver.received.length);
      receiver.received.push(r);
      const send = () => res.writeHead(reply.status, reply.headers).end(reply.body ?? '');
      if (reply.delayMs) timers.add(setTimeout(send, reply.delayMs));
      else send();
    });
  };
  const server = opts.tls ? https.createServer(opts.tls, handle) : http.createServer(handle);
  await new Promise<void>((r) => server.listen(0, host, r));
  receiver.url = `${opts.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${(server.address() as AddressInfo).port}/hook`;
  return receiver;
}
