import fs from 'node:fs';
import path from 'node:path';
import express, { Router, type RequestHandler } from 'express';
import { AppError } from '../../errors';
import { tenantRateLimit } from '../rate-limit';
import { consoleOperatorRouter, type OperatorDeps } from './console-operator.routes';
import { consoleSessions, type SessionDeps } from './console-session';
import { consoleStream, type StreamDeps } from './console-stream';
import { consoleTasksRouter, type ConsoleTasksDeps } from './console-tasks.routes';

export const CONSOLE_PATH = '/console';
/** Where `npm ci` (postinstall) builds the console's front end (console/, Vite). */
export const CONSOLE_DIST = path.resolve(__dirname, '..', '..', '..', 'console', 'dist');

export type ConsoleDeps = SessionDeps &
  ConsoleTasksDeps &
  StreamDeps &
  OperatorDeps & {
    maxBody: string;
    /** RATE_LIMIT_PER_MINUTE: a tenant's console calls count with its API calls. */
    rateLimitPerMinute: number;
  };

/**
 * The web console: the built front end and its API under /console/api. Its pages load nothing
 * from elsewhere but the result files they show, and run no inline script or style.
 */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  // Result files are wherever task_result points (this service's copies or the upstream's).
  "img-src 'self' data: blob: https: http:",
  "media-src 'self' blob: https: http:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export function consoleRouter(deps: ConsoleDeps, distDir = CONSOLE_DIST): Router {
  const r = Router();
  const sessions = consoleSessions(deps);
  r.use(CONSOLE_PATH, (_req, res, next) => {
    res.setHeader('content-security-policy', CONSOLE_CSP);
    res.setHeader('referrer-policy', 'same-origin');
    next();
  });

  const api = Router();
  const json = express.json({ limit: deps.maxBody, strict: false });
  api.post('/session', requireJson, json, sessions.signIn);
  api.get('/session', sessions.current);
  api.use(sessions.require);
  const limit = tenantRateLimit({ redis: deps.redis, keyPrefix: deps.keyPrefix, perMinute: deps.rateLimitPerMinute });
  api.use((req, res, next) => {
    const tenant = res.locals.console.tenant;
    if (!tenant) return next();
    res.locals.tenant = tenant;
    return limit(req, res, next);
  });
  api.use((_req, res, next) => {
    // Answers hold a tenant's data: never kept by a shared cache or the browser's back button.
    res.setHeader('cache-control', 'no-store');
    next();
  });
  api.delete('/session', sessions.signOut);
  api.get('/stream', consoleStream(deps));
  api.use('/operator', json, consoleOperatorRouter(deps));
  api.use(json, consoleTasksRouter(deps));
  r.use(`${CONSOLE_PATH}/api`, api);

  // Hashed file names: cached for a year. index.html names them, so it is revalidated every time.
  r.use(`${CONSOLE_PATH}/assets`, express.static(path.join(distDir, 'assets'), { immutable: true, maxAge: '365d', index: false }));
  r.get([CONSOLE_PATH, `${CONSOLE_PATH}/`], (_req, res, next) => {
    const index = path.join(distDir, 'index.html');
    if (!fs.existsSync(index))
      return next(new AppError('unavailable', 'the console is not built: run `npm ci` (or `npm run console:build`)'));
    res.setHeader('cache-control', 'no-cache');
    res.sendFile(index);
  });
  return r;
}

/** The sign-in must be JSON: a form of another site cannot send that without a CORS preflight. */
const requireJson: RequestHandler = (req, _res, next) => {
  next(
    req.is('application/json')
      ? undefined
      : new AppError('unsupported_media_type', 'sign-in must be JSON (Content-Type: application/json)'),
  );
};
