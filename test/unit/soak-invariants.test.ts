import { checkInvariants, type Observed } from '../../scripts/soak/invariants';
import type { StoredState } from '../../scripts/soak/soak-state';
import type { SimTask } from '../../src/simulator/kling-simulator';

/**
 * The soak's verdict is only as good as its checks: each one is shown a run that keeps every promise
 * but one, and must name exactly that promise (and the task behind it).
 */
const T = 'task-1';

function cleanRun(): { s: StoredState; o: Observed } {
  const upstream = { task_id: 'up-1', kind: 'image-generation', external_task_id: T, status: 'succeed' } as SimTask;
  return {
    s: {
      tasks: [{ id: T, external_task_id: 'ext-1', state: 'succeed', upstream_task_id: 'up-1', slots_held: 0, failure_reason: null }],
      events: [
        { task_id: T, seq: 1, from_state: null, to_state: 'queued' },
        { task_id: T, seq: 2, from_state: 'queued', to_state: 'submitted' },
        { task_id: T, seq: 3, from_state: 'submitted', to_state: 'processing' },
        { task_id: T, seq: 4, from_state: 'processing', to_state: 'succeed' },
      ],
      deliveries: [
        { id: 'msg_1', task_id: T, seq: 3, event_type: 'task.processing', status: 'delivered' },
        { id: 'msg_2', task_id: T, seq: 4, event_type: 'task.succeeded', status: 'delivered' },
      ],
      slots: [{ pool: 'image', counter: 0, held: 0 }],
      counts: [{ key: 'image-generation succeed', counted: 1, tasks: 1 }],
      liveJobs: [],
      failedJobs: 0,
    },
    o: {
      accepted: new Map([['ext-1', T]]),
      refusedCreates: [],
      arrivals: [
        { webhookId: 'msg_1', taskId: T, status: 'processing' },
        { webhookId: 'msg_2', taskId: T, status: 'succeed' },
      ],
      badSignatures: 0,
      upstreamTasks: [upstream],
      unexpectedExits: [],
      processes: 4,
    },
  };
}

const failing = (run: { s: StoredState; o: Observed }) =>
  checkInvariants(run.s, run.o)
    .filter((c) => c.violations.length)
    .map((c) => `${c.name}: ${c.violations.join(' | ')}`);

describe('soak invariants', () => {
  it('find nothing wrong with a run that kept every promise', () => {
    expect(failing(cleanRun())).toEqual([]);
  });

  const cases: [string, (r: { s: StoredState; o: Observed }) => void, RegExp][] = [
    [
      'an accepted task missing from the database',
      (r) => r.o.accepted.set('ext-2', 'task-2'),
      /^every accepted task recorded.*task-2 \(ext-2\): accepted, not in/,
    ],
    [
      'a task the client was never answered',
      (r) => r.o.accepted.clear(),
      /^every accepted task recorded.*task-1 \(ext-1\): recorded, never answered/,
    ],
    ['a create refused for good', (r) => r.o.refusedCreates.push('create 7: refused 400'), /^every accepted task recorded.*create 7/],
    ['a task left unfinished', (r) => (r.s.tasks[0].state = 'processing'), /^every task terminal: task-1: still processing$/],
    [
      'a second upstream task',
      (r) => (r.o.upstreamTasks as SimTask[]).push({ task_id: 'up-2', external_task_id: T, status: 'succeed' } as SimTask),
      /^exactly one upstream task.*task-1: 2 upstream tasks/,
    ],
    [
      'an upstream task of no task',
      (r) => (r.o.upstreamTasks as SimTask[]).push({ task_id: 'up-9', external_task_id: 'ghost', status: 'succeed' } as SimTask),
      /^exactly one upstream task.*upstream up-9: for ghost/,
    ],
    [
      'an end state the upstream does not have',
      (r) => ((r.o.upstreamTasks as SimTask[])[0].status = 'failed'),
      /^exactly one upstream task.*task-1: succeed here, failed upstream/,
    ],
    [
      'a webhook never received',
      (r) => r.o.arrivals.pop(),
      /^every status change delivered.*task-1: deliveries msg_1=task.processing,msg_2=task.succeeded, receiver processed msg_1=task.processing$/,
    ],
    [
      'webhooks out of order',
      (r) => r.o.arrivals.reverse(),
      /^every status change delivered.*receiver processed msg_2=task.succeeded,msg_1=task.processing/,
    ],
    [
      'a status change without its delivery',
      (r) => r.s.deliveries.shift(),
      /^every status change delivered.*task-1: status changes 3:task.processing,4:task.succeeded, deliveries 4:task.succeeded/,
    ],
    [
      'a delivery still pending',
      (r) => (r.s.deliveries[1].status = 'pending'),
      /^every status change delivered.*task-1: deliveries not delivered: task.succeeded pending/,
    ],
    ['a signature that does not verify', (r) => (r.o.badSignatures = 1), /^every status change delivered.*1 webhooks with a signature/],
    [
      'a finished task holding slots',
      (r) => (r.s.tasks[0].slots_held = 2),
      /^no slot held by a finished task: task-1: succeed, holds 2 slots$/,
    ],
    ['a slot counter off the tasks', (r) => (r.s.slots[0].counter = 1), /^no slot held.*pool image: the slot counter says 1, tasks hold 0/],
    [
      'a task count off the tasks',
      (r) => r.s.counts.push({ key: 'image-generation failed timed_out', counted: 1, tasks: 0 }),
      /^finished-task counts \(kt_tasks\) equal to the tasks: image-generation failed timed_out: counted 1, tasks 0$/,
    ],
    [
      'a submit job left for a finished task',
      (r) => r.s.liveJobs.push({ queue: 'task.submit', id: 'submit-task-1', state: 'delayed', taskId: T }),
      /^no job left in Redis.*task-1: task.submit job submit-task-1 still delayed/,
    ],
    [
      'a deliver job left for a finished task',
      (r) => r.s.liveJobs.push({ queue: 'webhook.deliver', id: 'deliver-msg_2-1-1', state: 'waiting', deliveryId: 'msg_2' }),
      /^no job left in Redis.*task-1: webhook.deliver job deliver-msg_2-1-1 still waiting/,
    ],
    [
      'a process that died on its own',
      (r) => r.o.unexpectedExits.push('worker-1: exit code 1'),
      /^no service process died on its own: worker-1/,
    ],
  ];
  it.each(cases)('name %s, and nothing else', (_what, spoil, expected) => {
    const run = cleanRun();
    spoil(run);
    const found = failing(run);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(expected);
  });
});
