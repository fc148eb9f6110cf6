import type { Express } from 'express';
import type { KindId } from '../kinds/kind';

export interface SimulatorOptions {
  /** Accepted plain bearer token. */
  apiKey?: string;
  /** Accepted AK/SK pair: HS256 JWT {iss: accessKey, exp, nbf} signed with secretKey. */
  accessKey?: string;
  secretKey?: string;
  /** Accepted model_name values of image generation; the first is the default. Default ['kling-v3']. */
  models?: string[];
  /** Accepted model_name values of both video kinds; the first is the default. Default ['kling-v3']. */
  videoModels?: string[];
  /** Delay from create to "processing". Default 300. */
  processingAfterMs?: number;
  /** Delay from "processing" to the terminal status. Default 700. */
  finishAfterMs?: number;
  /** 'whsec_...': when set, callbacks carry Standard Webhooks signature headers. */
  callbackSecret?: string;
  log?: (msg: string, extra?: object) => void;
}

export type SimTaskStatus = 'submitted' | 'processing' | 'succeed' | 'failed';

/** `task_result` of a succeeded task, as its kind built it. */
export interface SimTaskResult {
  images?: { index: number; url: string }[];
  videos?: { id: string; url: string; duration: string }[];
  [field: string]: unknown;
}

export interface SimTask {
  task_id: string;
  kind: KindId;
  external_task_id?: string;
  status: SimTaskStatus;
  status_msg: string;
  request: Record<string, unknown>;
  callback_url?: string;
  created_at: number;
  updated_at: number;
  /** Set while the task is `succeed`. */
  result?: SimTaskResult;
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
  /** The receiver did not answer within the callback deadline (5 s, as Kling's). */
  timedOut: boolean;
  /** When sending started (ms since epoch). */
  at: number;
  /** From the start of sending to the end of the receiver's answer, or to the failure. */
  durationMs: number;
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
  /** While set, every create answers with it (no task is created): an outage or a full account for a while. */
  createOutage?: InjectedError;
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
  /**
   * Image pool: max sum of n over unfinished image tasks; past it create answers HTTP 429 code
   * 1303. Kling counts each resource-pack pool on its own.
   */
  concurrencyLimit: number;
  /** Video pool: max number of unfinished video tasks (each holds one slot), same answer past it. */
  videoConcurrencyLimit: number;
  createLatencyMs: number;
  /**
   * The account's resource packs are used up: creates answer HTTP 429 code 1102, and
   * `GET /account/costs` lists the pack as `runOut` with nothing remaining. Switch it on mid-run
   * to see an account run out.
   */
  packsExhausted: boolean;
  /** Units of the simulated pack: `GET /account/costs` shows this minus one per task created. */
  packUnits: number;
}

export interface KlingSimulator {
  /** Routes at /v1/..., result files at /sim-files/...; can be mounted under a prefix. */
  app: Express;
  /** Starts an HTTP server (default port 0, host 127.0.0.1), returns its base URL and sets fileBaseUrl. */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops timers and the server, ends held requests and in-flight callbacks. */
  close(): Promise<void>;
  faults: SimulatorFaults;
  tasks: Map<string, SimTask>;
  /** Every API request received (not result file fetches), in arrival order. */
  received: ReceivedRequest[];
  /** Every request to the account endpoint (`GET /account/costs`, balance reads), in arrival order. */
  accountRequests: ReceivedRequest[];
  /** Every callback attempt, in completion order. */
  callbacks: SentCallback[];
  /**
   * Base for result file URLs (images, videos). When unset, URLs are built from the create
   * request's host and mount path, which is right both for listen() and for a mounted app.
   */
  fileBaseUrl?: string;
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
  /**
   * Forgets the tasks that ended before `before` (ms since epoch), and the requests and callbacks
   * recorded before it, so that a simulator serving a long run keeps a bounded memory and its
   * lookups stay short. Returns how many tasks it forgot.
   */
  forgetEnded(before: number): number;
}
