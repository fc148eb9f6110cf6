import type { RequestHandler } from 'express';
import { AppError } from '../errors';
import { safeEqual } from '../lib/safe-equal';

/**
 * Guards the operator pages (/metrics, /admin/queues). Without ADMIN_TOKEN they do not exist (404).
 * With it: `Authorization: Bearer <token>`, or HTTP basic auth with the token as password (what a
 * browser can send after its login prompt).
 */
export function adminOnly(token: string | undefined): RequestHandler {
  return (req, res, next) => {
    if (!token) return next(new AppError('route_not_found', `no route for ${req.method} ${req.baseUrl}${req.path}`));
    const header = req.get('authorization') ?? '';
    const bearer = /^Bearer\s+(.+)$/i.exec(header)?.[1];
    const basic = /^Basic\s+(.+)$/i.exec(header)?.[1];
    const password = basic ? Buffer.from(basic, 'base64').toString('utf8').split(':').slice(1).join(':') : undefined;
    const given = bearer ?? password;
    if (given && safeEqual(given, token)) return next();
    res.set('www-authenticate', 'Basic realm="kling-tracker admin", charset="UTF-8"');
    next(new AppError('auth_invalid', 'admin credentials required'));
  };
}
