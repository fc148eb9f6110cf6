import type { TaskState } from '../db/client';
import type { ClientStatus } from '../kinds/upstream-task';

/**
 * Order of the life cycle. A task only ever moves to a higher rank; succeed and failed share the
 * top rank, so once either is reached nothing moves the task again. `storing` (the upstream has
 * succeeded, its outputs are being copied) sits between the upstream's states and the end.
 */
const RANK: Record<TaskState, number> = { queued: 0, submitted: 1, processing: 2, storing: 2.5, succeed: 3, failed: 3 };

export function isTerminal(state: TaskState): boolean {
  return RANK[state] === 3;
}

export function canTransition(from: TaskState, to: TaskState): boolean {
  return !isTerminal(from) && RANK[to] > RANK[from];
}

/** Whether the upstream is done with a task in this state: it holds no slots and is not polled. */
export function isPastUpstream(state: TaskState): boolean {
  return isTerminal(state) || state === 'storing';
}

/**
 * A task waiting in our own queue is, for the client, already "submitted" (Kling's first value);
 * one whose outputs are being copied is still "processing", so its `succeed` carries the copies.
 */
export function toClientStatus(state: TaskState): ClientStatus {
  if (state === 'queued') return 'submitted';
  return state === 'storing' ? 'processing' : state;
}

const UPSTREAM_STATUSES: Record<string, TaskState> = {
  submitted: 'submitted',
  processing: 'processing',
  succeed: 'succeed',
  failed: 'failed',
};

/** Maps the upstream's task_status; null for a value Kling has not documented (never guessed). */
export function fromUpstreamStatus(status: string): TaskState | null {
  return Object.hasOwn(UPSTREAM_STATUSES, status) ? UPSTREAM_STATUSES[status] : null;
}
