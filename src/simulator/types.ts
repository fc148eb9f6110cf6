import type { Express } from 'express';

export interface SimulatorOptions {
  /** Accepted plain bearer token. */
  apiKey?: string;
  /** Accepted AK/SK pair: HS256 JWT {iss: accessKey, exp, nbf} signed with secretKey. */
  accessKey?: string;
  secretKey?: string;
  /** Accepted model_name values; the first is the default. Default ['kling-v3']. */
  models?: string[];
  /** Delay from create to "processing". Default 300. */
  processingAfterMs?: number;
  /** Delay from "processing" to the terminal status. Default 700. */
  finishAfterMs?: number;
  /** 'whsec_...': when set, callbacks carry Standard Webhooks signature headers. */
  callbackSecret?: string;
  log?: (msg: string, extra?: object) => void;
}

export type SimTaskStatus = 'submitted' | 'processing' | 'succeed' | 'failed';

export interface SimTask {
  task_id: string;
  external_task_id?: string;
  status: SimTaskStatus;
  status_msg: string;
  request: Record<string, unknown>;
  callback_url?: string;
  created_at: number;
  updated_at: number;
  images: { index: number; url: string }[];
}

export interface ReceivedRequest {
  method: string;
  path: string;
  query: Record<string, unknown>;
  body: unknown;
  authorization?: string;
  at: number;
}

export interface SentCallback {
  task_id: string;
  status: string;
  url: string;
  ok: boolean;
  httpStatus?: number;
  error?: string;
  at: number;
}

export interface InjectedError {
  http: number;
  code: number;
  message: string;
}

export interface SimulatorFaults {
  /** Each create request shifts one off and answers with it (no task is created). */
  createErrors: InjectedError[];
  /** Same for GET requests (single and list). */
  queryErrors: InjectedError[];
  /** Terminal status for tasks created from now on. */
  outcome: 'succeed' | 'failed';
  /** Share (0..1) of new tasks that end 'failed' whatever `outcome` says; 0 by default. */
  failRate: number;
  failMessage: string;
  loseCallbacks: boolean;
  duplicateCallbacks: boolean;
  reorderCallbacks: boolean;
  /** Create/query requests are held unanswered until set false or the simulator closes. */
  hang: boolean;
  /**
   * Creates go through (the task exists and runs), but their answers are held until set false or
   * the simulator closes: a slow or lost answer to a call that did create the task.
   */
  hangAfterCreate: boolean;
  /** Max sum of n over non-terminal tasks; past it create answers HTTP 429 code 1303. */
  concurrencyLimit: number;
  createLatencyMs: number;
}

export interface KlingSimulator {
  /** Routes at /v1/..., images at /sim-images/...; can be mounted under a prefix. */
  app: Express;
  /** Starts an HTTP server (default port 0, host 127.0.0.1), returns its base URL and sets imageBaseUrl. */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops timers and the server, ends held requests and in-flight callbacks. */
  close(): Promise<void>;
  faults: SimulatorFaults;
  tasks: Map<string, SimTask>;
  /** Every API request received (not image fetches), in arrival order. */
  received: ReceivedRequest[];
  /** Every callback attempt, in completion order. */
  callbacks: SentCallback[];
  /**
   * Base for result image URLs. When unset, URLs are built from the create request's host and
   * mount path, which is right both for listen() and for an app mounted into another server.
   */
  imageBaseUrl?: string;
  createdCount(): number;
  /** Resolves when no transition timers or callback deliveries are pending. */
  settle(): Promise<void>;
  /**
   * Forces a transition. The task leaves automatic progression: the test now drives it.
   * sendCallback defaults to true.
   */
  setTaskStatus(taskId: string, status: SimTaskStatus, opts?: { sendCallback?: boolean }): void;
  /** Clears tasks, received, callbacks, and restores default faults. */
  reset(): void;
}
