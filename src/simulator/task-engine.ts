import type { SimFile, SimParams, SlotPool } from '../kinds/kind';
import type { CallbackDispatcher } from './callback-dispatcher';
import { klingErrors } from './sim-error';
import type { SimKindRoute } from './sim-kinds';
import { fileBase } from './task-view';
import type { SimTask, SimTaskResult, SimTaskStatus, SimulatorFaults } from './types';
import type { WorkTracker } from './work-tracker';

interface TaskMeta {
  kind: SimKindRoute;
  params: SimParams;
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
  fileBaseUrl: () => string | undefined;
  log: (msg: string, extra?: object) => void;
}

const isTerminal = (status: SimTaskStatus) => status === 'succeed' || status === 'failed';

/** Owns the simulated tasks of every kind and their status machine: submitted -> processing -> succeed|failed. */
export class TaskEngine {
  readonly tasks = new Map<string, SimTask>();
  private readonly meta = new Map<string, TaskMeta>();
  /**
   * Task ids by external_task_id, and the tasks that may still hold slots: a create checks both, and
   * a scan of every task kept would make each create cost more than the last (a run that keeps
   * tens of thousands of tasks).
   */
  private readonly byExternalId = new Map<string, string>();
  private readonly unfinished = new Set<SimTask>();
  private created = 0;
  // Never reset, so task ids stay unique across reset() like they would upstream.
  private idSequence = 0;

  constructor(private readonly deps: TaskEngineDeps) {}

  create(kind: SimKindRoute, params: SimParams, request: Record<string, unknown>, requestBase: string): SimTask {
    // external_task_id is unique per account, whatever the kind.
    if (params.externalTaskId && this.findByExternalId(params.externalTaskId)) {
      throw klingErrors.duplicateExternalId();
    }
    if (this.slotsInUse(kind.pool) + params.slots > this.slotLimit(kind.pool)) {
      throw klingErrors.concurrencyExceeded();
    }
    const now = Date.now();
    const task: SimTask = {
      task_id: this.nextTaskId(now),
      kind: kind.id,
      external_task_id: params.externalTaskId,
      status: 'submitted',
      status_msg: '',
      request,
      callback_url: params.callbackUrl,
      created_at: now,
      updated_at: now,
    };
    this.meta.set(task.task_id, { kind, params, outcome: this.pickOutcome(), requestBase });
    this.tasks.set(task.task_id, task);
    if (task.external_task_id) this.byExternalId.set(task.external_task_id, task.task_id);
    this.unfinished.add(task);
    this.created++;
    this.deps.log('simulator task created', {
      task_id: task.task_id,
      kind: kind.id,
      external_task_id: task.external_task_id,
      slots: params.slots,
    });
    this.scheduleNext(task);
    return task;
  }

  private pickOutcome(): 'succeed' | 'failed' {
    return Math.random() < this.deps.faults.failRate ? 'failed' : this.deps.faults.outcome;
  }

  /** Looks up by task_id first, then by external_task_id (Kling accepts either in the path); a task is found only under its own kind. */
  find(kind: SimKindRoute, id: string): SimTask | undefined {
    const task = this.tasks.get(id);
    if (task?.kind === kind.id) return task;
    const byExternal = this.findByExternalId(id);
    return byExternal?.kind === kind.id ? byExternal : undefined;
  }

  findByExternalId(externalTaskId: string): SimTask | undefined {
    const id = this.byExternalId.get(externalTaskId);
    return id === undefined ? undefined : this.tasks.get(id);
  }

  /** Newest first; Map order is creation order. */
  list(kind: SimKindRoute, pageNum: number, pageSize: number): SimTask[] {
    const start = (pageNum - 1) * pageSize;
    const ofKind = [...this.tasks.values()].filter((task) => task.kind === kind.id);
    return ofKind.reverse().slice(start, start + pageSize);
  }

  /** A result file of a succeeded task, or undefined. */
  file(taskId: string, name: string): SimFile | undefined {
    const task = this.tasks.get(taskId);
    const meta = this.meta.get(taskId);
    if (!task || !meta || task.status !== 'succeed') return undefined;
    return meta.kind.sim.file({ taskId, params: meta.params }, name);
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

  /** Forgets the tasks that ended before `before` (ms); returns their ids. */
  forgetEnded(before: number): string[] {
    const gone: string[] = [];
    for (const [id, task] of this.tasks) {
      if (!isTerminal(task.status) || task.updated_at >= before) continue;
      this.forget(task);
      gone.push(id);
    }
    return gone;
  }

  reset(): void {
    for (const meta of this.meta.values()) this.deps.tracker.cancel(meta.timer);
    this.meta.clear();
    this.tasks.clear();
    this.byExternalId.clear();
    this.unfinished.clear();
    this.created = 0;
  }

  private forget(task: SimTask): void {
    this.tasks.delete(task.task_id);
    this.meta.delete(task.task_id);
    if (task.external_task_id && this.byExternalId.get(task.external_task_id) === task.task_id)
      this.byExternalId.delete(task.external_task_id);
    this.unfinished.delete(task);
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
    task.result = status === 'succeed' ? this.buildResult(task.task_id, meta) : undefined;
    this.deps.log('simulator task status changed', { task_id: task.task_id, status });
    this.deps.dispatcher.onTransition(task, sendCallback);
  }

  private buildResult(taskId: string, meta: TaskMeta): SimTaskResult {
    const base = fileBase(this.deps.fileBaseUrl() ?? meta.requestBase, taskId);
    return meta.kind.sim.result({ taskId, params: meta.params, fileBase: base }) as SimTaskResult;
  }

  // Kling counts slots per resource-pack pool: an image task holds n, a video task 1.
  private slotsInUse(pool: SlotPool): number {
    let slots = 0;
    for (const task of this.unfinished) {
      const meta = this.meta.get(task.task_id);
      // Read here, not tracked: a task that ended or left the map since (however that was done) drops out.
      if (!meta || isTerminal(task.status) || this.tasks.get(task.task_id) !== task) this.unfinished.delete(task);
      else if (meta.kind.pool === pool) slots += meta.params.slots;
    }
    return slots;
  }

  private slotLimit(pool: SlotPool): number {
    return pool === 'image' ? this.deps.faults.concurrencyLimit : this.deps.faults.videoConcurrencyLimit;
  }

  // Kling task ids are long digit strings; time plus a sequence keeps ours unique and sortable.
  private nextTaskId(now: number): string {
    this.idSequence = (this.idSequence + 1) % 1_000_000;
    return `${now}${String(this.idSequence).padStart(6, '0')}`;
  }
}
