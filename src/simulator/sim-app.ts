import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { checkAuthorization, type AuthConfig } from './auth';
import { imageDimensions, renderPng, seedFromText } from './png';
import type { RequestGate } from './request-gate';
import { parseCreateParams, parseJsonObject, parsePaging } from './request-validation';
import { errorEnvelope, KlingApiError, klingErrors, successEnvelope } from './sim-error';
import type { TaskEngine } from './task-engine';
import { toCreateData, toWireTask } from './task-view';
import type { InjectedError, ReceivedRequest, SimulatorFaults } from './types';

export interface SimAppDeps {
  engine: TaskEngine;
  gate: RequestGate;
  faults: SimulatorFaults;
  auth: AuthConfig;
  models: string[];
  received: ReceivedRequest[];
  isClosed: () => boolean;
  log: (msg: string, extra?: object) => void;
}

type Handler = (req: Request, res: Response) => Promise<void>;

/** The Express app of the simulator. Paths are relative, so it can be mounted under a prefix. */
export function buildSimApp(deps: SimAppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  // Bodies are read as text so invalid JSON can be answered (and recorded) the way Kling does.
  app.use('/v1', express.text({ type: () => true, limit: '20mb' }), recordRequest(deps));
  app.post('/v1/images/generations', apiRoute(deps, 'create', createTask(deps)));
  app.get('/v1/images/generations', apiRoute(deps, 'query', queryTasks(deps)));
  app.get('/v1/images/generations/:id', apiRoute(deps, 'query', getTask(deps)));
  app.use('/v1', () => {
    throw klingErrors.unknownRoute();
  });
  app.get('/sim-images/:taskId/:file', serveImage(deps));
  app.use(handleError(deps));
  return app;
}

function recordRequest(deps: SimAppDeps) {
  return (req: Request, _res: Response, next: NextFunction) => {
    deps.received.push({
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
 * faults, the injected error queue, then authentication.
 */
function apiRoute(deps: SimAppDeps, kind: 'create' | 'query', handler: Handler): Handler {
  return async (req, res) => {
    if (deps.isClosed()) throw klingErrors.closed();
    if (deps.faults.hang && !(await deps.gate.hold(res, () => deps.faults.hang))) return;
    const latency = kind === 'create' ? deps.faults.createLatencyMs : 0;
    if (latency > 0 && !(await deps.gate.delay(res, latency))) return;
    const injected = (kind === 'create' ? deps.faults.createErrors : deps.faults.queryErrors).shift();
    if (injected) throw toApiError(injected);
    const authError = checkAuthorization(req.get('authorization'), deps.auth);
    if (authError) throw authError;
    await handler(req, res);
  };
}

function toApiError(injected: InjectedError): KlingApiError {
  return new KlingApiError(injected.http, injected.code, injected.message);
}

function createTask(deps: SimAppDeps): Handler {
  return async (req, res) => {
    const body = parseJsonObject(req.body);
    const params = parseCreateParams(body, deps.models);
    const task = deps.engine.create(params, body, requestBase(req));
    if (deps.faults.hangAfterCreate && !(await deps.gate.hold(res, () => deps.faults.hangAfterCreate))) return;
    res.json(successEnvelope(toCreateData(task)));
  };
}

// Where this app is reachable for the caller, including any mount prefix.
function requestBase(req: Request): string {
  return `${req.protocol}://${req.get('host') ?? 'localhost'}${req.baseUrl}`;
}

function queryTasks(deps: SimAppDeps): Handler {
  return async (req, res) => {
    const query = req.query as Record<string, unknown>;
    if (query.external_task_id !== undefined) {
      const id = query.external_task_id;
      const task = typeof id === 'string' ? deps.engine.findByExternalId(id) : undefined;
      if (!task) throw klingErrors.taskNotFound();
      res.json(successEnvelope(toWireTask(task)));
      return;
    }
    const { pageNum, pageSize } = parsePaging(query);
    res.json(successEnvelope(deps.engine.list(pageNum, pageSize).map(toWireTask)));
  };
}

function getTask(deps: SimAppDeps): Handler {
  return async (req, res) => {
    const task = deps.engine.find(String(req.params.id));
    if (!task) throw klingErrors.taskNotFound();
    res.json(successEnvelope(toWireTask(task)));
  };
}

function serveImage(deps: SimAppDeps) {
  return (req: Request, res: Response) => {
    const taskId = String(req.params.taskId);
    const match = /^(\d+)\.png$/.exec(String(req.params.file));
    const spec = match ? deps.engine.imageSpec(taskId, Number(match[1])) : undefined;
    if (!match || !spec) {
      res.status(404).type('text/plain').send('image not found');
      return;
    }
    const { width, height } = imageDimensions(spec.aspectRatio, spec.resolution);
    const png = renderPng(width, height, seedFromText(`${taskId}/${match[1]}`));
    res.type('image/png').set('cache-control', 'public, max-age=86400').send(png);
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
