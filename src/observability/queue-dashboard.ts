import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Router } from 'express';
import { adminOnly } from '../http/admin-auth';
import type { Queues } from '../queues/queues';

export const DASHBOARD_PATH = '/admin/queues';

/** bull-board on every queue, behind ADMIN_TOKEN (absent: 404). */
export function queueDashboardRouter(queues: Queues, adminToken: string | undefined): Router {
  const r = Router();
  const adapter = new ExpressAdapter();
  adapter.setBasePath(DASHBOARD_PATH);
  createBullBoard({
    queues: [queues.submit, queues.deliver, queues.maintenance].map((q) => new BullMQAdapter(q, { readOnlyMode: false })),
    serverAdapter: adapter,
    options: { uiConfig: { boardTitle: 'kling-tracker queues' } },
  });
  r.use(
    DASHBOARD_PATH,
    adminOnly(adminToken),
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
