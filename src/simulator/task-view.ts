import type { SimTask } from './types';

// Wire shapes follow Kling's worst case: task_info is absent when there is no external_task_id,
// and task_result only appears once the task has succeeded.

/** The Kling task object, as returned by GET and posted (bare) to callback URLs. */
export function toWireTask(task: SimTask): Record<string, unknown> {
  return {
    task_id: task.task_id,
    task_status: task.status,
    task_status_msg: task.status_msg,
    ...taskInfo(task),
    created_at: task.created_at,
    updated_at: task.updated_at,
    ...(task.status === 'succeed' && task.result ? { task_result: task.result } : {}),
  };
}

/** The data of a successful create answer. */
export function toCreateData(task: SimTask): Record<string, unknown> {
  return {
    task_id: task.task_id,
    task_status: task.status,
    ...taskInfo(task),
    created_at: task.created_at,
    updated_at: task.updated_at,
  };
}

function taskInfo(task: SimTask): { task_info?: { external_task_id: string } } {
  return task.external_task_id ? { task_info: { external_task_id: task.external_task_id } } : {};
}

/** Where a task's result files are served: `${fileBase}/<name>`. */
export function fileBase(base: string, taskId: string): string {
  return `${base.replace(/\/+$/, '')}/sim-files/${encodeURIComponent(taskId)}`;
}
