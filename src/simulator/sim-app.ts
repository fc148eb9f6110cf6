import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { checkAuthorization, type AuthConfig } from './auth';
import { serveResultFile } from './file-route';
import type { RequestGate } from './request-gate';
import { parseJsonObject, parsePaging } from './request-validation';
import { errorEnvelope, KlingApiError, klingErrors, successEnvelope } from './sim-error';
import type { SimKindRoute } from './sim-kinds';
import type { TaskEngine } from './task-engine';
import { toCreateData, toWireTask } from './task-view';
import type { InjectedError, ReceivedRequest, SimulatorFaults } from './types';

export interface SimAppDeps {
  engine: TaskEngine;
  gate: RequestGate;
  faults: SimulatorFaults;
  auth: AuthConfig;
  kinds: readonly SimKindRoute[];
  received: ReceivedRequest[];
  /** The account endpoint's requests (balance reads), apart from the task API's. */
  accountRequests: ReceivedRequest[];
  isClosed: () => boolean;
  log: (msg: string, extra?: object) => void;
}

type Handler = (req: Request, res: Response) => Promise<void>;

/** The Express app of the simulator. Paths are relative, so it can be mounted under a prefix. */
export function buildSimApp(deps: SimAppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  // Bodies are read as text so invalid JSON can be answered (and recorded) the way Kling does.
  app.use('/v1', express.text({ type: () => true, limit: '20mb' }), recordRequest(deps.received));
  for (const kind of deps.kinds) {
    app.post(kind.path, apiRoute(deps, 'create', createTask(deps, kind)));
    app.get(kind.path, apiRoute(deps, 'query', queryTasks(deps, kind)));
    app.get(`${kind.path}/:id`, apiRoute(deps, 'query', getTask(deps, kind)));
  }
  app.use('/v1', () => {
    throw klingErrors.unknownRoute();
  });
  // Kling's account endpoint has no /v1 prefix.
  app.get('/account/costs', recordRequest(deps.accountRequests), apiRoute(deps, 'query', accountCosts(deps)));
  app.post('/sim/faults', express.json(), simFaults(deps));
  app.get('/sim-files/:taskId/:name', serveResultFile(deps.engine));
  app.use(handleError(deps));
  return app;
}

function recordRequest(into: ReceivedRequest[]) {
  return (req: Request, _res: Response, next: NextFunction) => {
    into.push({
      method: req.method,
      path: req.originalUrl.split('?')[0],
      query: { ...(req.query as Record<string, unknown>) },
      body: parseForRecord(req.body),
      authorization: req.get('authorization'),
      at: Date.now(),
    });
    next();
  };
}

function parseForRecord(body: unknown): unknown {
  if (typeof body !== 'string' || body === '') return undefined;
  try {
    return JSON.parse(body);
  } catch {
    return body;
  }
}

/**
 * Applies, in order, what happens to every API call before its own logic: the hang and latency
 * faults, the injected error queue (then, for creates, an ongoing outage), then authentication.
 */
function apiRoute(deps: SimAppDeps, kind: 'create' | 'query', handler: Handler): Handler {
  return async (req, res) => {
    if (deps.isClosed()) throw klingErrors.closed();
    if (deps.faults.hang && !(await deps.gate.hold(res, () => deps.faults.hang))) return;
    const latency = kind === 'create' ? deps.faults.createLatencyMs : 0;
    if (latency > 0 && !(await deps.gate.delay(res, latency))) return;
    const injected = kind === 'create' ? (deps.faults.createErrors.shift() ?? deps.faults.createOutage) : deps.faults.queryErrors.shift();
    if (injected) throw toApiError(injected);
    const authError = checkAuthorization(req.get('authorization'), deps.auth);
    if (authError) throw authError;
    if (kind === 'create' && deps.faults.packsExhausted) throw klingErrors.packExhausted();
    await handler(req, res);
  };
}

function toApiError(injected: InjectedError): KlingApiError {
  return new KlingApiError(injected.http, injected.code, injected.message);
}

function createTask(deps: SimAppDeps, kind: SimKindRoute): Handler {
  return async (req, res) => {
    const body = parseJsonObject(req.body);
    const parsed = kind.sim.parse(body, kind.models);
    if (!parsed.ok) throw klingErrors.invalidParam(parsed.message);
    const task = deps.engine.create(kind, parsed.params, body, requestBase(req));
    if (deps.faults.hangAfterCreate && !(await deps.gate.hold(res, () => deps.faults.hangAfterCreate))) return;
    res.json(successEnvelope(toCreateData(task)));
  };
}

// Where this app is reachable for the caller, including any mount prefix.
function requestBase(req: Request): string {
  return `${req.protocol}://${req.get('host') ?? 'localhost'}${req.baseUrl}`;
}

function queryTasks(deps: SimAppDeps, kind: SimKindRoute): Handler {
  return async (req, res) => {
    const query = req.query as Record<string, unknown>;
    if (query.external_task_id !== undefined) {
      const id = query.external_task_id;
      const found = typeof id === 'string' ? deps.engine.findByExternalId(id) : undefined;
      const task = found?.kind === kind.id ? found : undefined;
      if (!task) throw klingErrors.taskNotFound();
      res.json(successEnvelope(toWireTask(task)));
      return;
    }
    const { pageNum, pageSize } = parsePaging(query);
    res.json(successEnvelope(deps.engine.list(kind, pageNum, pageSize).map(toWireTask)));
  };
}

function getTask(deps: SimAppDeps, kind: SimKindRoute): Handler {
  return async (req, res) => {
    const task = deps.engine.find(kind, String(req.params.id));
    if (!task) throw klingErrors.taskNotFound();
    res.json(successEnvelope(toWireTask(task)));
  };
}

/** `GET /account/costs`: one simulated resource pack, its remaining units falling with each task created. */
function accountCosts(deps: SimAppDeps): Handler {
  return async (req, res) => {
    const start = Number(req.query.start_time);
    const end = Number(req.query.end_time);
    if (!Number.isInteger(start) || !Number.isInteger(end)) throw klingErrors.invalidParam('start_time and end_time are required (ms)');
    const total = deps.faults.packUnits;
    const remaining = deps.faults.packsExhausted ? 0 : Math.max(0, total - deps.engine.createdCount());
    res.json(
      successEnvelope({
        code: 0,
        msg: '',
        resource_pack_subscribe_infos: [
          {
            resource_pack_name: 'simulated pack',
            resource_pack_id: 'sim-pack-1',
            resource_pack_type: 'decreasing_total',
            total_quantity: total,
            remaining_quantity: remaining,
            purchase_time: 0,
            effective_time: 0,
            invalid_time: 4102444800000,
            status: remaining > 0 ? 'online' : 'runOut',
          },
        ],
      }),
    );
  };
}

/**
 * `POST /sim/faults` (the simulator's own, with the account's credential): switches failure modes of
 * a running simulator, e.g. `{"packs_exhausted": true}` to see an account run out mid-run, or
 * `{"image_slots": 2}` to give it a smaller pack than its clients think.
 */
function simFaults(deps: SimAppDeps) {
  return (req: Request, res: Response) => {
    const authError = checkAuthorization(req.get('authorization'), deps.auth);
    if (authError) throw authError;
    const body = (req.body ?? {}) as Record<string, unknown>;
    if (typeof body.packs_exhausted === 'boolean') deps.faults.packsExhausted = body.packs_exhausted;
    const slots = (v: unknown) => (v === null ? Infinity : typeof v === 'number' && v >= 0 ? v : undefined);
    deps.faults.concurrencyLimit = slots(body.image_slots) ?? deps.faults.concurrencyLimit;
    deps.faults.videoConcurrencyLimit = slots(body.video_slots) ?? deps.faults.videoConcurrencyLimit;
    const limit = (n: number) => (Number.isFinite(n) ? n : null);
    res.json(
      successEnvelope({
        packs_exhausted: deps.faults.packsExhausted,
        image_slots: limit(deps.faults.concurrencyLimit),
        video_slots: limit(deps.faults.videoConcurrencyLimit),
      }),
    );
  };
}

function handleError(deps: SimAppDeps) {
  return (error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const apiError = toKlingError(error);
    if (apiError.code === 5000) deps.log('simulator internal error', { error: String(error) });
    res.status(apiError.http).json(errorEnvelope(apiError));
  };
}

function toKlingError(error: unknown): KlingApiError {
  if (error instanceof KlingApiError) return error;
  // body-parser errors (too large, bad charset, aborted) carry a 4xx status.
  const status = (error as { status?: unknown } | null)?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return klingErrors.invalidRequest((error as Error).message);
  }
  return klingErrors.internal();
}
