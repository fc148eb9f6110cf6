import http from 'node:http';
import https from 'node:https';

/** The exchange ran past its deadline (told apart from connection errors by the callers that count them). */
export class PostTimeoutError extends Error {}

/**
 * POSTs a body and resolves with the HTTP status once the response has been read.
 * timeoutMs bounds the whole exchange, not just socket idleness. No keep-alive: each callback is
 * its own connection, so nothing lingers after the simulator closes.
 */
export function postJson(
  url: string,
  body: string,
  headers: Record<string, string>,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<number> {
  return new Promise((resolve, reject) => {
    let target: URL;
    try {
      target = new URL(url);
      if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new Error(`unsupported protocol ${target.protocol}`);
    } catch (error) {
      reject(error);
      return;
    }
    if (signal.aborted) {
      reject(new Error('simulator closed'));
      return;
    }
    const client = target.protocol === 'https:' ? https : http;
    const req = client.request(target, {
      method: 'POST',
      agent: false,
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
    });
    const timer = setTimeout(() => req.destroy(new PostTimeoutError(`timed out after ${timeoutMs} ms`)), timeoutMs);
    const onAbort = () => req.destroy(new Error('simulator closed'));
    signal.addEventListener('abort', onAbort, { once: true });
    let finished = false;
    const finish = (error: Error | undefined, status?: number) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve(status as number);
    };
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => finish(undefined, res.statusCode));
      res.on('error', (error) => finish(error));
      res.on('close', () => finish(new Error('connection closed before the response ended')));
    });
    req.on('error', (error) => finish(error));
    req.end(body);
  });
}
