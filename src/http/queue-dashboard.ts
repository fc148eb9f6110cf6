import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Router, type RequestHandler } from 'express';
import { invalidParameter } from '../errors';
import { adminOnly } from './admin-auth';
import { IdParam, MAX_ID_CHARS } from './request-input';
import { percentDecoded } from '../lib/text';
import type { Queues } from '../queues/queues';

export const DASHBOARD_PATH = '/admin/queues';

/** bull-board on every queue of the catalogue, behind ADMIN_TOKEN (absent: 404). */
export function queueDashboardRouter(queues: Pick<Queues, 'all'>, adminToken: string | undefined): Router {
  const r = Router();
  const adapter = new ExpressAdapter();
  adapter.setBasePath(DASHBOARD_PATH);
  createBullBoard({
    queues: queues.all.map((q) => new BullMQAdapter(q, { readOnlyMode: false })),
    serverAdapter: adapter,
    options: { uiConfig: { boardTitle: 'kling-tracker queues' } },
  });
  r.use(
    DASHBOARD_PATH,
    adminOnly(adminToken),
    refuseOddSegments,
    (_req, res, next) => {
      // The dashboard is a React page with inline bootstrapping: relax helmet's CSP for it only.
      res.setHeader(
        'content-security-policy',
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:",
      );
      next();
    },
    adapter.getRouter(),
  );
  return r;
}

/** bull-board answers in its own error shape; a queue or job id that could name nothing gets ours. */
const refuseOddSegments: RequestHandler = (req, _res, next) => {
  const odd = req.path.split('/').some((segment) => segment && !IdParam.safeParse(percentDecoded(segment)).success);
  next(odd ? invalidParameter(`path: a segment is over ${MAX_ID_CHARS} characters or contains the NUL character (\\u0000)`) : undefined);
};
