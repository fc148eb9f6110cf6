import type { TaskObject } from './api';

/** "3 min ago", "2 d ago". */
export function age(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export const time = (ms: number) => new Date(ms).toLocaleString();

/** "512 B", "1.4 MB". */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

const FINISHED = new Set(['succeed', 'failed']);
export const isFinished = (t: TaskObject) => FINISHED.has(t.task_status);

/** Where a task is in its life, in words (its internal stage, beyond Kling's four statuses). */
export function stage(t: TaskObject): string {
  const s = t.tracker.state;
  if (s === 'queued') return t.tracker.queue_position ? `queued here, position ${t.tracker.queue_position}` : 'queued here';
  if (s === 'submitted') return 'at the upstream, waiting to start';
  if (s === 'processing') return 'at the upstream, generating';
  if (s === 'storing') return 'generated; storing the results here';
  if (s === 'canceling') return 'canceling (ends when the upstream task ends)';
  if (s === 'timing_out') return 'timing out (ends when the upstream task ends)';
  if (s === 'canceled') return 'canceled';
  if (s === 'timed_out') return 'timed out';
  if (s === 'succeed') return 'done';
  return t.tracker.failure_reason ? `failed (${t.tracker.failure_reason})` : 'failed';
}
