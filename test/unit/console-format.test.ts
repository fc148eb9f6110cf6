import type { TaskObject } from '../../console/src/api';
import { bytes, stage } from '../../console/src/format';

/** A task object as the console receives it, in internal state `state`. */
const inState = (state: string, extra: Partial<TaskObject['tracker']> = {}): TaskObject => ({
  task_id: 't',
  task_status: 'processing',
  task_status_msg: '',
  task_info: {},
  task_result: {},
  created_at: 0,
  updated_at: 0,
  tracker: { state, failure_reason: null, upstream_task_id: null, model_name: 'kling-v3', finished_at: null, ...extra },
});

describe("the console's words for a task's stage", () => {
  it('names every running stage, the copy of results included, and never calls a running task failed', () => {
    expect(stage(inState('queued', { queue_position: 3 }))).toBe('queued here, position 3');
    expect(stage(inState('submitted'))).toBe('at the upstream, waiting to start');
    expect(stage(inState('processing'))).toBe('at the upstream, generating');
    expect(stage(inState('storing'))).toBe('generated; storing the results here');
    expect(stage(inState('failed', { failure_reason: 'upstream_failed' }))).toBe('failed (upstream_failed)');
  });

  it('writes sizes in the unit that reads best', () => {
    expect([bytes(512), bytes(2048), bytes(3 * 1024 * 1024)]).toEqual(['512 B', '2.0 KB', '3.0 MB']);
  });
});
