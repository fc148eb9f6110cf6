import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Prometheus metrics of this process. Event counters count what this process did (a deployment
 * sums them over processes); the task gauges are read from Postgres at scrape time, so they match
 * the database whichever process made the changes.
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'kt_process_' });

const durations = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600];
const latencies = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export const metrics = {
  tasksCreated: new Counter({
    name: 'kt_tasks_created_total',
    help: 'Tasks accepted by this API process, by kind',
    labelNames: ['kind'],
    registers: [registry],
  }),
  tasksFinished: new Counter({
    name: 'kt_tasks_finished_total',
    help: 'Tasks this process moved to a terminal state, by kind, client status and internal reason',
    labelNames: ['kind', 'status', 'reason'],
    registers: [registry],
  }),
  taskDuration: new Histogram({
    name: 'kt_task_duration_seconds',
    help: 'Time from create to terminal state, by kind',
    labelNames: ['kind', 'status'],
    buckets: durations,
    registers: [registry],
  }),
  upstreamRequests: new Counter({
    name: 'kt_upstream_requests_total',
    help: 'Calls to the upstream by operation and outcome (ok or the error kind)',
    labelNames: ['op', 'outcome'],
    registers: [registry],
  }),
  upstreamLatency: new Histogram({
    name: 'kt_upstream_request_duration_seconds',
    help: 'Latency of upstream calls',
    labelNames: ['op'],
    buckets: latencies,
    registers: [registry],
  }),
  callbacks: new Counter({
    name: 'kt_callbacks_received_total',
    help: 'Upstream callbacks by outcome (applied, duplicate, stale, not_forward, unknown_status, unauthorized, invalid, shed ...)',
    labelNames: ['outcome'],
    registers: [registry],
  }),
  submissionWindow: new Gauge({
    name: 'kt_submission_window_slots',
    help: 'Backpressure window of this worker process: upstream slots it lets the deployment hold before waiting for callbacks to catch up',
    registers: [registry],
  }),
  webhookAttempts: new Counter({
    name: 'kt_webhook_attempts_total',
    help: 'Outgoing webhook attempts by outcome (delivered, failed, gone, dead)',
    labelNames: ['outcome'],
    registers: [registry],
  }),
  webhookInlineFull: new Counter({
    name: 'kt_webhook_inline_full_total',
    help: 'First webhook attempts sent through the queue because this process had its maximum of inline sends in flight',
    registers: [registry],
  }),
  webhookLatency: new Histogram({
    name: 'kt_webhook_delivery_latency_seconds',
    help: 'Time from a status change to its successful delivery to the client',
    buckets: latencies,
    registers: [registry],
  }),
  historyPruned: new Counter({
    name: 'kt_history_pruned_rows_total',
    help: 'Rows of finished history removed by retention (TASK_, EVENT_, DELIVERY_RETENTION_DAYS), by table',
    labelNames: ['table'],
    registers: [registry],
  }),
  tasks: new Gauge({
    name: 'kt_tasks',
    help: 'Tasks in the database by kind and internal state',
    labelNames: ['kind', 'state'],
    registers: [registry],
  }),
  tasksTerminal: new Gauge({
    name: 'kt_tasks_terminal',
    help: 'Finished tasks in the database by kind, client status and internal reason',
    labelNames: ['kind', 'status', 'reason'],
    registers: [registry],
  }),
  slotsInUse: new Gauge({
    name: 'kt_upstream_slots_in_use',
    help: 'Upstream concurrency slots held by tasks, by pool (Kling counts image and video packs apart)',
    labelNames: ['pool'],
    registers: [registry],
  }),
  accountSubmissions: new Counter({
    name: 'kt_account_submissions_total',
    help: 'Creates sent to each upstream account by this process, by outcome (ok, the business code of a refusal, or the error kind)',
    labelNames: ['account', 'outcome'],
    registers: [registry],
  }),
  accountSlotsInUse: new Gauge({
    name: 'kt_account_slots_in_use',
    help: 'Upstream slots held per account and pool',
    labelNames: ['account', 'pool'],
    registers: [registry],
  }),
  accountSlotLimit: new Gauge({
    name: 'kt_account_slot_limit',
    help: 'Usable upstream slots per account and pool (the configured limit, lowered for a while after a 1303)',
    labelNames: ['account', 'pool'],
    registers: [registry],
  }),
  accountHealthy: new Gauge({
    name: 'kt_account_healthy',
    help: '1 when the account takes work in the pool, 0 when disabled or out of rotation (the reason is the label)',
    labelNames: ['account', 'pool', 'health'],
    registers: [registry],
  }),
  accountRemainingUnits: new Gauge({
    name: 'kt_account_remaining_units',
    help: 'Remaining units per resource pack of each account, as GET /account/costs last said (Kling: up to 12 h stale)',
    labelNames: ['account', 'pack'],
    registers: [registry],
  }),
  queueJobs: new Gauge({
    name: 'kt_queue_jobs',
    help: 'BullMQ jobs by queue and state',
    labelNames: ['queue', 'state'],
    registers: [registry],
  }),
  queueOldestWait: new Gauge({
    name: 'kt_queue_oldest_waiting_seconds',
    help: 'Age of the oldest job waiting in each queue (0 when none)',
    labelNames: ['queue'],
    registers: [registry],
  }),
  resultDownloads: new Counter({
    name: 'kt_result_downloads_total',
    help: 'Downloads of result outputs from the upstream into the blob store, by outcome (ok, http_status, too_large, wrong_type, timeout, network, host_failing: not tried, its host failing lately)',
    labelNames: ['outcome'],
    registers: [registry],
  }),
  resultCopiesStarted: new Counter({
    name: 'kt_result_copies_started_total',
    help: 'Tasks whose copy of results started, by where: inline (the process that saw the success, at once) or job (a result.store job: STORAGE_INLINE_MS=0, or STORAGE_CONCURRENCY copies already running there)',
    labelNames: ['via'],
    registers: [registry],
  }),
  resultBytesStored: new Counter({
    name: 'kt_result_stored_bytes_total',
    help: 'Bytes of new objects written to the blob store (identical content is written once)',
    labelNames: ['store'],
    registers: [registry],
  }),
  resultObjectsStored: new Counter({
    name: 'kt_result_stored_objects_total',
    help: 'New objects written to the blob store',
    labelNames: ['store'],
    registers: [registry],
  }),
  resultStoreLatency: new Histogram({
    name: 'kt_result_store_duration_seconds',
    help: 'Time to copy one output: download from the upstream and write to the blob store',
    labelNames: ['store'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [registry],
  }),
  resultStorageFallbacks: new Counter({
    name: 'kt_result_storage_fallbacks_total',
    help: "Tasks that succeeded with the upstream's URLs without their copies: copying failed past STORAGE_TIMEOUT_MS, failed in a way no retry cures, or could not reach the host now",
    labelNames: ['kind'],
    registers: [registry],
  }),
  resultFileReads: new Counter({
    name: 'kt_result_file_reads_total',
    help: 'Reads of signed result links, by outcome (ok, partial, invalid, expired, gone, error)',
    labelNames: ['outcome'],
    registers: [registry],
  }),
  resultFilesExpired: new Counter({
    name: 'kt_result_files_expired_total',
    help: "Stored copies deleted by their tenant's retention (rows), and blobs no copy refers to any more (objects)",
    labelNames: ['what'],
    registers: [registry],
  }),
};
