import http from 'node:http';
import https from 'node:https';
import { Webhook } from 'standardwebhooks';
import { deliveryAgent, isPublicAddress } from './ssrf';

export const USER_AGENT = 'kling-tracker-webhooks/0.1';
const RESPONSE_BYTES_KEPT = 1024;

export interface WebhookRequest {
  url: string;
  /** The Standard Webhooks message id (stable across attempts). */
  id: string;
  body: string;
  /** Current secret first; during a rotation also the previous one (both signatures are sent). */
  secrets: string[];
  timeoutMs: number;
  allowPrivate: boolean;
}

export interface AttemptResult {
  ok: boolean;
  httpStatus?: number;
  error?: string;
  responseBody?: string;
  durationMs: number;
  /** The receiver's Retry-After (429/503), in ms. */
  retryAfterMs?: number;
  startedAt: Date;
}

/** Standard Webhooks headers: one `v1,<sig>` per active secret, space-separated. */
export function signatureHeaders(id: string, body: string, secrets: string[], at: Date): Record<string, string> {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': secrets.map((s) => new Webhook(s).sign(id, at, body)).join(' '),
  };
}

/**
 * What of a receiver's answer (body, redirect target) may be recorded, given the address the
 * socket is connected to. The deliveries listing shows it: from a private or loopback address
 * (reachable only with WEBHOOK_ALLOW_PRIVATE_NETWORKS) that would make webhooks a reader of
 * internal services. An unknown address counts as private.
 */
export function answerToKeep(peer: string | undefined, text: string): string | undefined {
  return peer !== undefined && isPublicAddress(peer) ? text : undefined;
}

/**
 * One delivery attempt. Never throws: every outcome is an AttemptResult. 2xx is success; any other
 * status, a redirect (never followed), a timeout, a refused address or a connection error is not.
 */
export function sendWebhook(req: WebhookRequest): Promise<AttemptResult> {
  const startedAt = new Date();
  const started = process.hrtime.bigint();
  const elapsed = () => Number((process.hrtime.bigint() - started) / 1_000_000n);
  return new Promise((resolve) => {
    let settled = false;
    let deadline: NodeJS.Timeout | undefined;
    const finish = (r: Omit<AttemptResult, 'durationMs' | 'startedAt'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      resolve({ ...r, durationMs: elapsed(), startedAt });
    };
    let outgoing: http.ClientRequest;
    // The filtering agent refuses an IP-literal host synchronously, before any socket exists.
    try {
      // Module and agent both from the parsed protocol: rows stored before URLs were normalised
      // may carry a scheme written `HTTPS:`.
      const url = new URL(req.url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`not an http(s) URL (${url.protocol.slice(0, 20)})`);
      const client = url.protocol === 'https:' ? https : http;
      outgoing = client.request(url, {
        method: 'POST',
        agent: deliveryAgent(url, req.allowPrivate),
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(req.body),
          'user-agent': USER_AGENT,
          ...signatureHeaders(req.id, req.body, req.secrets, startedAt),
        },
      });
    } catch (err) {
      finish({ ok: false, error: describe(err as Error) });
      return;
    }
    // One deadline for the whole exchange (connect, send, first KB of the answer).
    deadline = setTimeout(() => {
      outgoing.destroy(new Error(`timed out after ${req.timeoutMs} ms`));
    }, req.timeoutMs);
    outgoing.on('error', (err) => finish({ ok: false, error: describe(err) }));
    outgoing.on('response', (res) => {
      const status = res.statusCode ?? 0;
      const peer = res.socket?.remoteAddress;
      const chunks: Buffer[] = [];
      let kept = 0;
      const done = (cutShort = false) => {
        const responseBody = answerToKeep(peer, Buffer.concat(chunks).toString('utf8').slice(0, RESPONSE_BYTES_KEPT));
        const location = answerToKeep(peer, String(res.headers.location ?? '?').slice(0, 200));
        const redirect = status >= 300 && status < 400;
        finish({
          ok: status >= 200 && status < 300,
          httpStatus: status,
          responseBody,
          ...(redirect ? { error: `redirect (HTTP ${status})${location === undefined ? '' : ` to ${location}`} not followed` } : {}),
          retryAfterMs: status === 429 || status === 503 ? retryAfterMs(res.headers['retry-after']) : undefined,
        });
        // A socket with an unread answer cannot be reused; one read to the end goes back to the agent.
        if (cutShort) res.destroy();
      };
      res.on('data', (chunk: Buffer) => {
        if (kept < RESPONSE_BYTES_KEPT) chunks.push(chunk.subarray(0, RESPONSE_BYTES_KEPT - kept));
        kept += chunk.length;
        // The rest of a large answer is of no use: stop reading.
        if (kept >= RESPONSE_BYTES_KEPT) done(true);
      });
      res.on('end', () => done());
      res.on('error', () => done(true));
    });
    outgoing.end(req.body);
  });
}

function describe(err: Error & { code?: string }): string {
  const msg = err.message || String(err);
  return err.code && !msg.includes(err.code) ? `${err.code}: ${msg}` : msg;
}

function retryAfterMs(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  const sec = Number(value);
  if (Number.isFinite(sec) && sec >= 0) return sec * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
