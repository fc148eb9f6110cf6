import type { TaskViewContext } from '../../tasks/task-view';
import { Router } from 'express';
import { z } from 'zod';
import type { Db, Task, Tenant } from '../../db/client';
import { envelope, invalidParameter } from '../../errors';
import type { TaskKind } from '../../kinds/kind';
import { KINDS } from '../../kinds/registry';
import { KLING_STATUSES } from '../../kinds/upstream-task';
import type { BlobStore } from '../../results/blob-store';
import { listTaskFiles } from '../../results/result-files';
import type { CreateTask } from '../../tasks/create-task';
import { cancelTask } from '../../tasks/end-task';
import type { TaskStore } from '../../tasks/status-machine';
import { queuePosition } from '../../tasks/task-slots';
import { findTenantTask, listGallery, searchGallery, taskEvents, type GalleryRow } from '../../tasks/task-gallery';
import { toCreatedObject, toTaskObject } from '../../tasks/task-view';
import { listDeliveries } from '../../webhooks/deliveries.service';
import { IdParam, parseQuery, pathId } from '../request-input';
import { redeliverNow, type RedeliverDeps } from '../tasks.routes';
import { kindForms } from './kind-forms';

export interface ConsoleTasksDeps extends RedeliverDeps {
  db: Db;
  store: TaskStore;
  createTask: CreateTask;
  models: Parameters<typeof kindForms>[0];
  /** How results are shown (durable copies' signed links with RESULT_URLS=mirror), as the API shows them. */
  view?: TaskViewContext;
  /** The store the copies are in (its kind is shown with each file). */
  blobs?: Pick<BlobStore, 'kind'>;
}

export const PAGE_SIZE = 24;
/** Queued tasks of a page whose queue position is looked up (one count each). */
const POSITIONS_PER_PAGE = 12;
/** Request strings longer than this (base64 images) are shown abbreviated. */
const MAX_SHOWN_CHARS = 1000;

const DateParam = z
  .string()
  .max(40)
  .refine((s) => !Number.isNaN(Date.parse(s)), 'must be a date (YYYY-MM-DD or an ISO 8601 time)')
  .transform((s) => new Date(s));

export const GalleryQuery = z.object({
  status: z.enum(KLING_STATUSES, { error: `must be one of ${KLING_STATUSES.join(', ')}` }).optional(),
  kind: z
    .enum(KINDS.map((k) => k.id) as [string, ...string[]], { error: `must be one of ${KINDS.map((k) => k.id).join(', ')}` })
    .optional(),
  from: DateParam.optional(),
  to: DateParam.optional(),
  q: IdParam.optional(),
  after: z
    .string()
    .max(400)
    .regex(/^\d+_.+$/, 'must be the `next` value of the previous page')
    .optional(),
});

/** A task as a gallery card shows it: the client's task object plus the kind and the prompt's start. */
export function galleryItem(row: GalleryRow, view?: TaskViewContext, queuePosition?: number) {
  const kind = KINDS.find((k) => k.id === row.kind);
  return {
    ...toTaskObject(row, { queuePosition, view }),
    kind: row.kind,
    kind_title: kind?.title ?? row.kind,
    prompt: row.promptExcerpt ?? '',
  };
}

/** Queue positions of the queued rows among `rows` (at most POSITIONS_PER_PAGE of them). */
export async function withPositions(db: Db, rows: GalleryRow[], view?: TaskViewContext) {
  const queued = new Set(rows.filter((r) => r.state === 'queued').slice(0, POSITIONS_PER_PAGE));
  return Promise.all(rows.map(async (r) => galleryItem(r, view, queued.has(r) ? await queuePosition(db, r) : undefined)));
}

/** The tenant's side of the console API: the same use cases as the Kling API, across every kind. */
export function consoleTasksRouter(deps: ConsoleTasksDeps): Router {
  const r = Router();
  const tenantOf = (locals: Express.Locals): Tenant => {
    if (!locals.console.tenant) throw invalidParameter('session: this view is for tenants; sign in with an API key');
    return locals.console.tenant;
  };

  r.get('/kinds', (_req, res) => {
    tenantOf(res.locals);
    res.json(envelope(res.locals.requestId, kindForms(deps.models)));
  });

  r.get('/tasks', async (req, res) => {
    const tenant = tenantOf(res.locals);
    const query = parseQuery(req, GalleryQuery);
    if (query.q) {
      const rows = await searchGallery(deps.db, tenant.id, query.q);
      res.json(envelope(res.locals.requestId, { items: await withPositions(deps.db, rows, deps.view), next: null }));
      return;
    }
    const cursor = query.after ? parseCursor(query.after) : undefined;
    const rows = await listGallery(deps.db, tenant.id, query, PAGE_SIZE + 1, cursor);
    const page = rows.slice(0, PAGE_SIZE);
    const last = page[page.length - 1];
    const next = rows.length > PAGE_SIZE ? `${last.createdAt.getTime()}_${last.id}` : null;
    res.json(envelope(res.locals.requestId, { items: await withPositions(deps.db, page, deps.view), next }));
  });

  r.get('/tasks/:id', async (req, res) => {
    const tenant = tenantOf(res.locals);
    const task = await findTenantTask(deps.db, tenant.id, pathId(req, 'id'));
    const [position, events, deliveries, files] = await Promise.all([
      task.state === 'queued' ? queuePosition(deps.db, task) : undefined,
      taskEvents(deps.db, task.id),
      listDeliveries(deps.db, task.id),
      listTaskFiles(deps.db, task.id),
    ]);
    res.json(
      envelope(res.locals.requestId, {
        task: toTaskObject(task, { queuePosition: position, view: deps.view }),
        kind: task.kind,
        kind_title: KINDS.find((k) => k.id === task.kind)?.title ?? task.kind,
        request: requestShown(task),
        events: events.map((e) => ({ seq: e.seq, from: e.fromState, to: e.toState, source: e.source, at: e.createdAt.getTime() })),
        deliveries,
        files: files.map((f) => ({
          output: `${f.outputKind} ${f.index + 1}`,
          content_type: f.contentType,
          size: f.size,
          sha256: f.sha256,
          store: deps.blobs?.kind ?? null,
          storage_key: f.storageKey,
          upstream_url: f.upstreamUrl,
          stored_at: f.storedAt.getTime(),
          expires_at: f.expiresAt?.getTime() ?? null,
        })),
      }),
    );
  });

  r.post('/tasks/:id/cancel', async (req, res) => {
    const tenant = tenantOf(res.locals);
    const task = await findTenantTask(deps.db, tenant.id, pathId(req, 'id'));
    const { result, task: after } = await cancelTask(deps.store, task.id);
    if (result === 'finished') throw invalidParameter(`task: has already finished (${toTaskObject(after).task_status}); nothing to cancel`);
    res.json(envelope(res.locals.requestId, toTaskObject(after, { view: deps.view })));
  });

  r.post('/tasks/:id/deliveries/:webhook_id/redeliver', async (req, res) => {
    const tenant = tenantOf(res.locals);
    const task = await findTenantTask(deps.db, tenant.id, pathId(req, 'id'));
    res.json(envelope(res.locals.requestId, await redeliverNow(deps, task.id, pathId(req, 'webhook_id'))));
  });

  // The create of each kind: the API's own use case, so validation and its wording are the same.
  r.post('/kinds/:kind/tasks', async (req, res) => {
    const tenant = tenantOf(res.locals);
    const kind: TaskKind | undefined = KINDS.find((k) => k.id === req.params.kind);
    if (!kind) throw invalidParameter(`kind: must be one of ${KINDS.map((k) => k.id).join(', ')}`);
    const { task } = await deps.createTask(tenant, kind, req.body, { requestId: res.locals.requestId });
    res.json(envelope(res.locals.requestId, toCreatedObject(task)));
  });

  return r;
}

function parseCursor(after: string) {
  const cut = after.indexOf('_');
  const ms = Number(after.slice(0, cut));
  if (!Number.isSafeInteger(ms)) throw invalidParameter('after: must be the `next` value of the previous page');
  return { createdAt: new Date(ms), id: after.slice(cut + 1) };
}

/** Every request parameter the task was created with; base64 images abbreviated. */
function requestShown(task: Task): Record<string, unknown> {
  const request = { ...(task.request as Record<string, unknown>) };
  if (task.callbackUrl) request.callback_url = task.callbackUrl;
  if (task.externalTaskId) request.external_task_id = task.externalTaskId;
  const abbreviate = (v: unknown): unknown =>
    typeof v === 'string' && v.length > MAX_SHOWN_CHARS
      ? `${v.slice(0, 60)}… (${v.length} characters)`
      : Array.isArray(v)
        ? v.map(abbreviate)
        : v && typeof v === 'object'
          ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, abbreviate(x)]))
          : v;
  return abbreviate(request) as Record<string, unknown>;
}
