import type { SimTask } from '../../src/simulator/kling-simulator';
import type { TaskState } from '../../src/db/client';
import { toClientStatus } from '../../src/tasks/task-state';
import type { Arrival } from './webhook-receiver';
import type { StoredState, TaskRow } from './soak-state';

/** One promise of the service, checked over the whole run: how many things it held for, and each that broke it. */
export interface CheckResult {
  name: string;
  checked: number;
  unit: string;
  violations: string[];
}

/** What the soak's own parts saw: the client, the receiver, the upstream, the supervisor. */
export interface Observed {
  /** Task id by external_task_id, for every create answered 200. */
  accepted: Map<string, string>;
  /** Creates refused for good, and those never answered. */
  refusedCreates: string[];
  arrivals: Arrival[];
  badSignatures: number;
  upstreamTasks: Iterable<SimTask>;
  /** Service processes that died without being killed, and how many ran. */
  unexpectedExits: string[];
  processes: number;
}

const TERMINAL = new Set(['succeed', 'failed']);
const clientStatus = (state: string) => toClientStatus(state as TaskState);
const EVENT_TYPE: Record<string, string> = { processing: 'task.processing', succeed: 'task.succeeded', failed: 'task.failed' };

function check(name: string, checked: number, unit: string, violations: string[]): CheckResult {
  return { name, checked, unit, violations };
}

/** Every promise the soak checks, in the order it prints them. */
export function checkInvariants(s: StoredState, o: Observed): CheckResult[] {
  return [
    acceptedRecorded(s, o),
    check(
      'every task terminal',
      s.tasks.length,
      'tasks',
      s.tasks.filter((t) => !TERMINAL.has(t.state)).map((t) => `${t.id}: still ${t.state}`),
    ),
    oneUpstreamTaskEach(s.tasks, [...o.upstreamTasks]),
    webhooksInOrder(s, o),
    slotsReleased(s),
    check(
      'finished-task counts (kt_tasks) equal to the tasks',
      s.tasks.length,
      'tasks',
      s.counts.filter((c) => c.counted !== c.tasks).map((c) => `${c.key}: counted ${c.counted}, tasks ${c.tasks}`),
    ),
    noJobsForFinishedTasks(s),
    check('no service process died on its own', o.processes, 'processes', o.unexpectedExits),
  ];
}

/** Nothing accepted is lost, nothing is recorded twice, and every create got an answer. */
function acceptedRecorded(s: StoredState, o: Observed): CheckResult {
  const byExternal = new Map(s.tasks.map((t) => [t.external_task_id, t]));
  const violations = [...o.refusedCreates];
  for (const [externalId, taskId] of o.accepted) {
    const row = byExternal.get(externalId);
    if (!row) violations.push(`${taskId} (${externalId}): accepted, not in the database`);
    else if (row.id !== taskId) violations.push(`${taskId} (${externalId}): the database holds ${row.id} instead`);
  }
  for (const t of s.tasks)
    if (!o.accepted.has(t.external_task_id)) violations.push(`${t.id} (${t.external_task_id}): recorded, never answered to the client`);
  return check('every accepted task recorded, once', o.accepted.size, 'tasks', violations);
}

/** Exactly one upstream task per task, the one it records, in the same end state; none belonging to nobody. */
function oneUpstreamTaskEach(tasks: TaskRow[], upstream: SimTask[]): CheckResult {
  const byExternal = new Map<string, SimTask[]>();
  for (const u of upstream) byExternal.set(u.external_task_id ?? '', [...(byExternal.get(u.external_task_id ?? '') ?? []), u]);
  const violations: string[] = [];
  for (const t of tasks) {
    const mine = byExternal.get(t.id) ?? [];
    byExternal.delete(t.id);
    // An unfinished task (reported as such) may not have reached the upstream yet, or not recorded its answer.
    if (!TERMINAL.has(t.state)) {
      if (mine.length > 1) violations.push(`${t.id}: ${mine.length} upstream tasks (${t.state})`);
    } else if (mine.length !== 1)
      violations.push(`${t.id}: ${mine.length} upstream tasks (${t.state}, ${t.failure_reason ?? 'no failure reason'})`);
    else if (mine[0].task_id !== t.upstream_task_id)
      violations.push(`${t.id}: records upstream ${t.upstream_task_id}, the upstream task is ${mine[0].task_id}`);
    else if (mine[0].status !== t.state) violations.push(`${t.id}: ${t.state} here, ${mine[0].status} upstream`);
  }
  for (const [externalId, orphans] of byExternal)
    violations.push(`upstream ${orphans.map((u) => u.task_id).join(', ')}: for ${externalId || 'no task'}, which does not exist`);
  return check('exactly one upstream task per task, in its end state', tasks.length, 'tasks', violations);
}

/**
 * Every change of the client-visible status has a delivery (the same event seq), each delivered, and
 * the receiver, deduplicating on webhook-id, processed exactly those, in that order.
 */
function webhooksInOrder(s: StoredState, o: Observed): CheckResult {
  const group = <T extends { task_id?: string; taskId?: string }>(rows: T[]) => {
    const m = new Map<string, T[]>();
    for (const r of rows) {
      const id = (r.task_id ?? r.taskId)!;
      m.set(id, [...(m.get(id) ?? []), r]);
    }
    return m;
  };
  const events = group(s.events);
  const deliveries = group(s.deliveries);
  const arrivals = group(o.arrivals);
  const violations: string[] = o.badSignatures ? [`${o.badSignatures} webhooks with a signature that does not verify`] : [];
  let checked = 0;
  for (const t of s.tasks) {
    const expected = (events.get(t.id) ?? [])
      .filter((e) => e.from_state && clientStatus(e.from_state) !== clientStatus(e.to_state))
      .map((e) => ({ seq: e.seq, type: EVENT_TYPE[clientStatus(e.to_state)] }));
    const rows = deliveries.get(t.id) ?? [];
    const got = (arrivals.get(t.id) ?? []).map((a) => `${a.webhookId}=${EVENT_TYPE[a.status]}`);
    checked += expected.length;
    const describe = (list: { seq: number; type: string }[]) => list.map((e) => `${e.seq}:${e.type}`).join(',');
    const recorded = rows.map((d) => ({ seq: d.seq, type: d.event_type }));
    if (describe(expected) !== describe(recorded))
      violations.push(`${t.id}: status changes ${describe(expected)}, deliveries ${describe(recorded)}`);
    const undelivered = rows.filter((d) => d.status !== 'delivered');
    if (undelivered.length)
      violations.push(`${t.id}: deliveries not delivered: ${undelivered.map((d) => `${d.event_type} ${d.status}`).join(', ')}`);
    const sent = rows.map((d) => `${d.id}=${d.event_type}`);
    if (sent.join(',') !== got.join(','))
      violations.push(`${t.id}: deliveries ${sent.join(',')}, receiver processed ${got.join(',') || 'nothing'}`);
  }
  return check('every status change delivered as a webhook, once, in order', checked, 'webhooks', violations);
}

function slotsReleased(s: StoredState): CheckResult {
  const finished = s.tasks.filter((t) => TERMINAL.has(t.state));
  const violations = finished.filter((t) => t.slots_held > 0).map((t) => `${t.id}: ${t.state}, holds ${t.slots_held} slots`);
  for (const p of s.slots) {
    if (p.counter !== p.held) violations.push(`pool ${p.pool}: the slot counter says ${p.counter}, tasks hold ${p.held}`);
  }
  return check('no slot held by a finished task', finished.length, 'finished tasks', violations);
}

const countUnfinished = (tasks: TaskRow[]) => tasks.filter((t) => !TERMINAL.has(t.state)).length;

function noJobsForFinishedTasks(s: StoredState): CheckResult {
  const state = new Map(s.tasks.map((t) => [t.id, t.state]));
  const taskOfDelivery = new Map(s.deliveries.map((d) => [d.id, d.task_id]));
  const violations: string[] = [];
  for (const job of s.liveJobs) {
    const taskId = job.taskId ?? (job.deliveryId ? taskOfDelivery.get(job.deliveryId) : undefined);
    if (!taskId || TERMINAL.has(state.get(taskId) ?? 'succeed'))
      violations.push(`${taskId ?? 'no task'}: ${job.queue} job ${job.id} still ${job.state}`);
  }
  return check('no job left in Redis for a finished task', state.size - countUnfinished(s.tasks), 'finished tasks', violations);
}
