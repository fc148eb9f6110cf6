import type { TaskState } from '../db/client';
import type { ClientStatus } from '../kinds/upstream-task';

/**
 * Order of the life cycle. A task only ever moves to a higher rank; succeed and failed share the
 * top rank, so once either is reached nothing moves the task again.
 */
const RANK: Record<TaskState, number> = { queued: 0, submitted: 1, processing: 2, succeed: 3, failed: 3 };

export function isTerminal(state: TaskState): boolean {
  return RANK[state] === 3;
}

export function canTransition(from: TaskState, to: TaskState): boolean {
  return !isTerminal(from) && RANK[to] > RANK[from];
}

/** A task waiting in our own queue is, for the client, already "submitted" (Kling's first value). */
export function toClientStatus(state: TaskState): ClientStatus {
  return state === 'queued' ? 'submitted' : state;
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
