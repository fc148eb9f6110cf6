import jwt from 'jsonwebtoken';
import { request as httpRequest } from 'undici';
import { metrics } from '../observability/metrics';
import { UpstreamTask } from '../kinds/upstream-task';
import { classifyUpstreamAnswer, UpstreamError } from './upstream-errors';

export interface KlingCredentials {
  apiKey?: string;
  accessKey?: string;
  secretKey?: string;
}

export interface KlingClientOptions extends KlingCredentials {
  /** May carry a path prefix (e.g. https://api.powertokens.ai/kling). */
  baseUrl: string;
  timeoutMs: number;
  /** The pool account this client speaks for (metrics label); the environment's when unset. */
  account?: string;
}

/** One resource pack as `GET /account/costs` lists it. */
export interface ResourcePack {
  pack: string;
  type: string | null;
  status: string | null;
  remaining: number | null;
}

/** Kling's JWT lifetime; we renew well before it ends so a request never carries a dying token. */
const TOKEN_TTL_SEC = 1800;
const RENEW_BEFORE_SEC = 300;

export class KlingClient {
  private token: { value: string; exp: number } | null = null;

  constructor(private readonly opts: KlingClientOptions) {}

  /** Creates the upstream task at its kind's path (e.g. /v1/videos/text2video). Throws UpstreamError, classified. */
  async createTask(path: string, body: Record<string, unknown>): Promise<UpstreamTask> {
    const data = await this.request('POST', path, body);
    return parseTask(data);
  }

  /** The upstream task of a kind (its path) by its task_id, or null when the upstream does not know it. */
  async getTask(path: string, upstreamTaskId: string): Promise<UpstreamTask | null> {
    return this.queryOrNull(`${path}/${encodeURIComponent(upstreamTaskId)}`);
  }

  /**
   * The upstream task created with this external_task_id, or null. Kling documents the id in the
   * path; some deployments only answer the query form, so that is tried when the path form finds
   * nothing.
   */
  async findByExternalId(path: string, externalTaskId: string): Promise<UpstreamTask | null> {
    try {
      const byPath = await this.queryOrNull(`${path}/${encodeURIComponent(externalTaskId)}`);
      if (byPath) return byPath;
    } catch (err) {
      // An upstream that only takes task ids in the path may call ours an invalid parameter.
      if (!(err instanceof UpstreamError && err.kind === 'rejected')) throw err;
    }
    return this.queryOrNull(`${path}?external_task_id=${encodeURIComponent(externalTaskId)}`);
  }

  /**
   * The account's resource packs and their remaining units (`GET /account/costs`, no `/v1`; Kling
   * asks for at most one call a second, the caller reads it at most once a minute). The window is
   * the last 30 days up to now, which covers every pack still effective.
   */
  async resourcePacks(): Promise<ResourcePack[]> {
    const end = Date.now();
    const data = (await this.request('GET', `/account/costs?start_time=${end - 30 * 86_400_000}&end_time=${end}`)) as
      { resource_pack_subscribe_infos?: unknown } | undefined;
    const infos = Array.isArray(data?.resource_pack_subscribe_infos)
      ? (data.resource_pack_subscribe_infos as Record<string, unknown>[])
      : [];
    const str = (v: unknown) => (typeof v === 'string' ? v : null);
    return infos.map((p) => ({
      pack: str(p.resource_pack_name) ?? str(p.resource_pack_id) ?? '?',
      type: str(p.resource_pack_type),
      status: str(p.status),
      remaining: typeof p.remaining_quantity === 'number' ? p.remaining_quantity : null,
    }));
  }

  private async queryOrNull(path: string): Promise<UpstreamTask | null> {
    try {
      const data = await this.request('GET', path);
      const task = Array.isArray(data) ? data[0] : data;
      return task == null ? null : parseTask(task);
    } catch (err) {
      if (err instanceof UpstreamError && err.kind === 'not_found') return null;
      throw err;
    }
  }

  /** Every upstream call, measured: latency, and outcome (ok or the error kind). */
  private async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const op = method === 'POST' ? 'create' : 'query';
    const end = metrics.upstreamLatency.startTimer({ op });
    try {
      const data = await this.send(method, path, body);
      metrics.upstreamRequests.inc({ op, outcome: 'ok' });
      if (op === 'create') metrics.accountSubmissions.inc({ account: this.opts.account ?? 'env', outcome: 'ok' });
      return data;
    } catch (err) {
      const outcome = err instanceof UpstreamError ? err.kind : 'error';
      metrics.upstreamRequests.inc({ op, outcome });
      if (op === 'create') metrics.accountSubmissions.inc({ account: this.opts.account ?? 'env', outcome: submissionOutcome(err) });
      throw err;
    } finally {
      end();
    }
  }

  private async send(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = { accept: 'application/json' };
    const auth = this.authorization();
    if (auth) headers.authorization = auth;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const { status, text, retryAfterHeader } = await exchange(this.opts.baseUrl + path, method, headers, body, this.opts.timeoutMs);
    const ok = status >= 200 && status < 300;
    const parsed = safeJson(text) as { code?: unknown; message?: unknown; data?: unknown } | undefined;
    const code = typeof parsed?.code === 'number' ? parsed.code : undefined;
    if (ok && code === 0) return parsed?.data;
    const message = typeof parsed?.message === 'string' ? parsed.message.slice(0, 500) : `HTTP ${status}`;
    const kind = ok && code === undefined ? 'server' : classifyUpstreamAnswer(status, code, message);
    if (kind === 'auth_expired') this.token = null;
    throw new UpstreamError(kind, message, status, code, retryAfter(retryAfterHeader));
  }

  private authorization(): string | undefined {
    const { apiKey, accessKey, secretKey } = this.opts;
    if (accessKey && secretKey) return `Bearer ${this.jwt(accessKey, secretKey)}`;
    if (apiKey) return `Bearer ${apiKey}`;
    return undefined;
  }

  private jwt(accessKey: string, secretKey: string): string {
    const now = Math.floor(Date.now() / 1000);
    if (this.token && this.token.exp - now > RENEW_BEFORE_SEC) return this.token.value;
    const exp = now + TOKEN_TTL_SEC;
    // Exactly Kling's claims: iss = access key, exp = now + 30 min, nbf = now - 5 s (clock skew).
    const value = jwt.sign({ iss: accessKey, exp, nbf: now - 5 }, secretKey, { algorithm: 'HS256', header: { alg: 'HS256', typ: 'JWT' } });
    this.token = { value, exp };
    return value;
  }
}

/**
 * One HTTP exchange with the upstream, its answer read whole. undici's `request` rather than
 * `fetch`: the same client underneath, without the WHATWG layers' CPU on every call. One deadline bounds the whole exchange, the answer included.
 * Redirects are not followed. Throws UpstreamError (timeout, network) when there is no answer.
 */
async function exchange(
  url: string,
  method: 'GET' | 'POST',
  headers: Record<string, string>,
  body: unknown,
  timeoutMs: number,
): Promise<{ status: number; text: string; retryAfterHeader: string | undefined }> {
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), timeoutMs);
  try {
    const res = await httpRequest(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: deadline.signal,
    }).catch((err: Error) => {
      if (deadline.signal.aborted) throw new UpstreamError('timeout', `upstream did not answer within ${timeoutMs} ms`);
      throw new UpstreamError('network', `upstream unreachable: ${err.message}`);
    });
    const text = await res.body.text().catch(() => '');
    if (res.statusCode >= 300 && res.statusCode < 400) {
      const location = String(res.headers.location ?? '?').slice(0, 200);
      throw new UpstreamError(
        'network',
        `upstream unreachable: redirected (HTTP ${res.statusCode} to ${location}); redirects are not followed`,
      );
    }
    const retryAfterHeader = res.headers['retry-after'];
    return { status: res.statusCode, text, retryAfterHeader: Array.isArray(retryAfterHeader) ? retryAfterHeader[0] : retryAfterHeader };
  } finally {
    clearTimeout(timer);
  }
}

/** A refused create by its business code when it has one (1101, 1303 ...), else the error kind. */
function submissionOutcome(err: unknown): string {
  if (!(err instanceof UpstreamError)) return 'error';
  return err.code !== undefined && err.code !== 0 ? String(err.code) : err.kind;
}

function parseTask(data: unknown): UpstreamTask {
  const parsed = UpstreamTask.safeParse(data);
  if (!parsed.success) throw new UpstreamError('server', 'upstream answered without a valid task object');
  return parsed.data;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function retryAfter(header: string | undefined): number | undefined {
  if (!header) return undefined;
  const sec = Number(header);
  if (Number.isFinite(sec) && sec >= 0) return sec;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - Date.now()) / 1000);
}
