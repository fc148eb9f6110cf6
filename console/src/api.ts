/** The console's API (/console/api): the session cookie goes along by itself; the CSRF token is echoed on every change. */

export type Status = 'submitted' | 'processing' | 'succeed' | 'failed';

export interface TaskObject {
  task_id: string;
  task_status: Status;
  task_status_msg: string;
  task_info: { external_task_id?: string };
  task_result: { images?: { index: number; url: string }[]; videos?: { id: string; url: string; duration?: string }[] };
  created_at: number;
  updated_at: number;
  tracker: {
    state: string;
    queue_position?: number;
    failure_reason: string | null;
    upstream_task_id: string | null;
    model_name: string;
    finished_at: number | null;
    /** Durable copies (RESULT_URLS=mirror only). */
    files?: { state: 'none' | 'storing' | 'stored' | 'upstream' | 'expired'; expires_at: number | null; expired_at: number | null };
  };
}

export interface GalleryItem extends TaskObject {
  kind: string;
  kind_title: string;
  prompt: string;
}

export interface Attempt {
  chain: number;
  attempt: number;
  at: number;
  duration_ms: number;
  http_status: number | null;
  error: string | null;
  response_body: string | null;
}

export interface Delivery {
  webhook_id: string;
  event_type: string;
  status: 'pending' | 'delivered' | 'gone' | 'dead';
  url: string;
  chain: number;
  attempt_count: number;
  next_attempt_at: number | null;
  last_error: string | null;
  created_at: number;
  attempts: Attempt[];
}

export interface TaskDetail {
  task: TaskObject;
  kind: string;
  kind_title: string;
  request: Record<string, unknown>;
  events: { seq: number; from: string | null; to: string; source: string; at: number }[];
  deliveries: Delivery[];
  /** Where each output's copy lives (none with RESULT_URLS=upstream, or before the copies are stored). */
  files: StoredFile[];
}

export interface StoredFile {
  output: string;
  content_type: string;
  size: number;
  sha256: string;
  /** `directory` or `s3`. */
  store: string | null;
  storage_key: string;
  upstream_url: string;
  stored_at: number;
  expires_at: number | null;
}

export interface JsonSchema {
  type?: string;
  enum?: unknown[];
  description?: string;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  maxLength?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
}

export interface KindForm {
  id: string;
  title: string;
  path: string;
  pool: string;
  example: Record<string, unknown>;
  schema: JsonSchema;
}

export interface Session {
  role: 'tenant' | 'operator';
  name: string;
  csrf_token: string;
}

/** A refusal, worded by the server (Kling's `{code, message}`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: number | undefined,
    message: string,
  ) {
    super(message);
  }
}

let csrfToken = '';
export const setCsrfToken = (token: string) => (csrfToken = token);

export async function api<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`/console/api${path}`, {
      method,
      credentials: 'same-origin',
      headers: {
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        'x-csrf-token': csrfToken,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, undefined, 'The service did not answer: check that it is running and reachable, then try again.');
  }
  const json = (await res.json().catch(() => null)) as { code?: number; message?: string; data?: T } | null;
  if (!res.ok || !json || json.code !== 0) {
    throw new ApiError(res.status, json?.code, json?.message ?? `${res.status} ${res.statusText}`);
  }
  return json.data as T;
}
