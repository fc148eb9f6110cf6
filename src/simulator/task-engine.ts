import type { CallbackDispatcher } from './callback-dispatcher';
import type { CreateParams } from './request-validation';
import { klingErrors } from './sim-error';
import { imageUrl } from './task-view';
import type { SimTask, SimTaskStatus, SimulatorFaults } from './types';
import type { WorkTracker } from './work-tracker';

interface TaskMeta {
  n: number;
  aspectRatio: string;
  resolution: string;
  outcome: 'succeed' | 'failed';
  requestBase: string;
  timer?: NodeJS.Timeout;
}

export interface TaskEngineDeps {
  faults: SimulatorFaults;
  tracker: WorkTracker;
  dispatcher: CallbackDispatcher;
  processingAfterMs: number;
  finishAfterMs: number;
  imageBaseUrl: () => string | undefined;
  log: (msg: string, extra?: object) => void;
}

const isTerminal = (status: SimTaskStatus) => status === 'succeed' || status === 'failed';

/** Owns the simulated tasks and their status machine: submitted -> processing -> succeed|failed. */
export class TaskEngine {
  readonly tasks = new Map<string, SimTask>();
  private readonly meta = new Map<string, TaskMeta>();
  private created = 0;
  // Never reset, so task ids stay unique across reset() like they would upstream.
  private idSequence = 0;

  constructor(private readonly deps: TaskEngineDeps) {}

  create(params: CreateParams, request: Record<string, unknown>, requestBase: string): SimTask {
    if (params.externalTaskId && this.findByExternalId(params.externalTaskId)) {
      throw klingErrors.duplicateExternalId();
    }
    if (this.slotsInUse() + params.n > this.deps.faults.concurrencyLimit) {
      throw klingErrors.concurrencyExceeded();
    }
    const now = Date.now();
    const task: SimTask = {
      task_id: this.nextTaskId(now),
      external_task_id: params.externalTaskId,
      status: 'submitted',
      status_msg: '',
      request,
      callback_url: params.callbackUrl,
      created_at: now,
      updated_at: now,
      images: [],
    };
    const { n, aspectRatio, resolution } = params;
    this.meta.set(task.task_id, { n, aspectRatio, resolution, outcome: this.pickOutcome(), requestBase });
    this.tasks.set(task.task_id, task);
    this.created++;
    this.deps.log('simulator task created', { task_id: task.task_id, external_task_id: task.external_task_id, n });
    this.scheduleNext(task);
    return task;
  }

  private pickOutcome(): 'succeed' | 'failed' {
    return Math.random() < this.deps.faults.failRate ? 'failed' : this.deps.faults.outcome;
  }

  /** Looks up by task_id first, then by external_task_id (Kling accepts either in the path). */
  find(id: string): SimTask | undefined {
    return this.tasks.get(id) ?? this.findByExternalId(id);
  }

  findByExternalId(externalTaskId: string): SimTask | undefined {
    for (const task of this.tasks.values()) if (task.external_task_id === externalTaskId) return task;
    return undefined;
  }

  /** Newest first; Map order is creation order. */
  list(pageNum: number, pageSize: number): SimTask[] {
    const start = (pageNum - 1) * pageSize;
    return [...this.tasks.values()].reverse().slice(start, start + pageSize);
  }

  imageSpec(taskId: string, index: number): { aspectRatio: string; resolution: string } | undefined {
    const task = this.tasks.get(taskId);
    const meta = this.meta.get(taskId);
    if (!task || !meta || !task.images.some((image) => image.index === index)) return undefined;
    return { aspectRatio: meta.aspectRatio, resolution: meta.resolution };
  }

  createdCount(): number {
    return this.created;
  }

  /** Forced transition: the task stops progressing on its own from here on. */
  forceStatus(taskId: string, status: SimTaskStatus, sendCallback: boolean): void {
    const task = this.tasks.get(taskId);
    const meta = this.meta.get(taskId);
    if (!task || !meta) throw new Error(`simulator: unknown task ${taskId}`);
    this.deps.tracker.cancel(meta.timer);
    meta.timer = undefined;
    this.transition(task, status, sendCallback);
  }

  reset(): void {
    for (const meta of this.meta.values()) this.deps.tracker.cancel(meta.timer);
    this.meta.clear();
    this.tasks.clear();
    this.created = 0;
  }

  private scheduleNext(task: SimTask): void {
    const meta = this.meta.get(task.task_id);
    if (!meta) return;
    if (task.status === 'submitted') {
      meta.timer = this.deps.tracker.schedule(this.deps.processingAfterMs, () => {
        this.transition(task, 'processing', true);
        this.scheduleNext(task);
      });
    } else if (task.status === 'processing') {
      meta.timer = this.deps.tracker.schedule(this.deps.finishAfterMs, () => {
        meta.timer = undefined;
        this.transition(task, meta.outcome, true);
      });
    }
  }

  private transition(task: SimTask, status: SimTaskStatus, sendCallback: boolean): void {
    const meta = this.meta.get(task.task_id);
    if (!meta) return;
    task.status = status;
    // Strictly increasing even when two changes land in the same millisecond.
    task.updated_at = Math.max(Date.now(), task.updated_at + 1);
    task.status_msg = status === 'failed' ? this.deps.faults.failMessage : '';
    task.images = status === 'succeed' ? this.buildImages(task.task_id, meta) : [];
    this.deps.log('simulator task status changed', { task_id: task.task_id, status });
    this.deps.dispatcher.onTransition(task, sendCallback);
  }

  private buildImages(taskId: string, meta: TaskMeta): SimTask['images'] {
    const base = this.deps.imageBaseUrl() ?? meta.requestBase;
    return Array.from({ length: meta.n }, (_, index) => ({ index, url: imageUrl(base, taskId, index) }));
  }

  private slotsInUse(): number {
    let slots = 0;
    for (const task of this.tasks.values()) {
      if (!isTerminal(task.status)) slots += this.meta.get(task.task_id)?.n ?? 0;
    }
    return slots;
  }

  // Kling task ids are long digit strings; time plus a sequence keeps ours unique and sortable.
  private nextTaskId(now: number): string {
    this.idSequence = (this.idSequence + 1) % 1_000_000;
    return `${now}${String(this.idSequence).padStart(6, '0')}`;
  }
}
