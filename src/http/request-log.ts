import type express from 'express';
import type { Logger } from '../logger';
import { redactUrl } from '../lib/redact-url';

/**
 * One log line per request at `info`, written when the answer is sent (or the client left before
 * it: `request aborted`). Below that level (LOG_LEVEL=warn or error) only failed requests (5xx) are
 * logged. Written here rather than with pino-http, which builds a child logger for every request
 * (docs/benchmarks.md, "logs at info", has what that cost).
 */
export function requestLog(log: Logger): express.RequestHandler {
  const everyRequest = log.isLevelEnabled('info');
  return (req, res, next) => {
    const started = performance.now();
    res.once('close', () => {
      // Closed before its answer was sent: the client left (its status would say nothing).
      const answered = res.writableFinished;
      const failed = answered && res.statusCode >= 500;
      if (!everyRequest && !failed) return;
      const line = {
        request_id: res.locals.requestId,
        req: { method: req.method, url: redactUrl(req.originalUrl) },
        ...(answered ? { res: { status: res.statusCode } } : {}),
        responseTime: Math.round(performance.now() - started),
      };
      if (failed) log.error(line, 'request failed');
      else log.info(line, answered ? 'request completed' : 'request aborted');
    });
    next();
  };
}
