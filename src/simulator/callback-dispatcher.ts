import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { Webhook } from 'standardwebhooks';
import { postJson, PostTimeoutError } from './http-post';
import { toWireTask } from './task-view';
import type { SentCallback, SimTask, SimulatorFaults } from './types';
import type { WorkTracker } from './work-tracker';

const CALLBACK_TIMEOUT_MS = 5000;

interface Delivery {
  taskId: string;
  status: string;
  url: string;
  body: string;
}

interface TaskCallbackState {
  // Deliveries of one task go out one after another, so callbacks arrive in transition order
  // unless a fault says otherwise.
  chain: Promise<void>;
  // reorderCallbacks parks the processing callback here until the terminal one has been sent.
  deferred?: Delivery;
}

export interface CallbackDispatcherDeps {
  faults: SimulatorFaults;
  tracker: WorkTracker;
  record: (callback: SentCallback) => void;
  log: (msg: string, extra?: object) => void;
  callbackSecret?: string;
}

/** Sends Kling-style task callbacks: bare task object, one attempt, 5 s timeout, no retries. */
export class CallbackDispatcher {
  private readonly states = new Map<string, TaskCallbackState>();
  private readonly abort = new AbortController();
  private readonly webhook?: Webhook;

  constructor(private readonly deps: CallbackDispatcherDeps) {
    // Every callback in flight listens to it (and removes its listener when it ends); a slow receiver means many at once.
    setMaxListeners(0, this.abort.signal);
    if (deps.callbackSecret) this.webhook = new Webhook(deps.callbackSecret);
  }

  /** Called after every status change; the body is snapshotted now, whenever it is sent. */
  onTransition(task: SimTask, send: boolean): void {
    const state = this.stateFor(task.task_id);
    const terminal = task.status === 'succeed' || task.status === 'failed';
    if (this.deps.faults.loseCallbacks || !task.callback_url) {
      if (terminal) state.deferred = undefined;
      return;
    }
    const delivery = send ? this.snapshot(task, task.callback_url) : undefined;
    if (delivery && task.status === 'processing' && this.deps.faults.reorderCallbacks) {
      state.deferred = delivery;
      return;
    }
    if (delivery) this.enqueue(state, delivery);
    if (terminal && state.deferred) {
      this.enqueue(state, state.deferred);
      state.deferred = undefined;
    }
  }

  reset(): void {
    this.states.clear();
  }

  /** Drops the delivery state of tasks that are gone (a delivery still in flight completes). */
  forget(taskIds: string[]): void {
    for (const id of taskIds) this.states.delete(id);
  }

  close(): void {
    this.abort.abort();
  }

  private stateFor(taskId: string): TaskCallbackState {
    let state = this.states.get(taskId);
    if (!state) {
      state = { chain: Promise.resolve() };
      this.states.set(taskId, state);
    }
    return state;
  }

  private snapshot(task: SimTask, url: string): Delivery {
    return { taskId: task.task_id, status: task.status, url, body: JSON.stringify(toWireTask(task)) };
  }

  private enqueue(state: TaskCallbackState, delivery: Delivery): void {
    const copies = this.deps.faults.duplicateCallbacks ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      state.chain = state.chain.then(() => this.deliver(delivery));
      this.deps.tracker.track(state.chain);
    }
  }

  // Never rejects: the outcome of every attempt is recorded instead.
  private async deliver(delivery: Delivery): Promise<void> {
    if (this.abort.signal.aborted) return;
    const at = Date.now();
    const base = { task_id: delivery.taskId, status: delivery.status, url: delivery.url, at };
    try {
      const httpStatus = await postJson(delivery.url, delivery.body, this.headers(delivery.body), CALLBACK_TIMEOUT_MS, this.abort.signal);
      const ok = httpStatus >= 200 && httpStatus < 300;
      this.deps.record({ ...base, ok, httpStatus, timedOut: false, durationMs: Date.now() - at });
      this.deps.log('simulator callback sent', { ...base, httpStatus });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const timedOut = error instanceof PostTimeoutError;
      this.deps.record({ ...base, ok: false, error: message, timedOut, durationMs: Date.now() - at });
      this.deps.log('simulator callback failed', { ...base, error: message });
    }
  }

  // Every POST gets its own webhook-id, duplicates included: Kling documents no retry identity,
  // so receivers must deduplicate on the task state, not on the message id.
  private headers(body: string): Record<string, string> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (!this.webhook) return headers;
    const id = `msg_${randomUUID()}`;
    const now = new Date();
    headers['webhook-id'] = id;
    headers['webhook-timestamp'] = String(Math.floor(now.getTime() / 1000));
    headers['webhook-signature'] = this.webhook.sign(id, now, body);
    return headers;
  }
}
