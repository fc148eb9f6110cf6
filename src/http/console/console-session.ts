import { createHash, randomBytes } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { z } from 'zod';
import type { Db, Tenant } from '../../db/client';
import { AppError, invalidParameter } from '../../errors';
import type { RedisClient } from '../../lib/redis-client';
import { safeEqual } from '../../lib/safe-equal';
import { apiKeyShape } from '../../tenants/api-key';
import type { TenantCache } from '../../tenants/tenant-cache';
import { hashApiKey } from '../../tenants/tenants.service';
import type { AuthFailures } from '../auth-failures';

/**
 * Web console sessions. The API key (or ADMIN_TOKEN) is sent once, to POST /console/api/session,
 * and exchanged for a random session id in an HttpOnly, SameSite=Strict cookie (Secure over
 * https): page scripts never hold the key, so nothing in localStorage can leak it. The session
 * record is kept server-side in Redis under the id's hash, so signing out ends it everywhere.
 *
 * CSRF: every state-changing call must echo the session's CSRF token in `x-csrf-token`. A page of
 * another site can neither read the token (it comes in a JSON answer, and no CORS is served) nor
 * send the cookie (SameSite=Strict). The sign-in itself must be JSON, which a cross-site form
 * cannot send without a preflight.
 */

export const SESSION_COOKIE = 'kt_console';
export const CSRF_HEADER = 'x-csrf-token';
const COOKIE_PATH = '/console';

export const ConsoleSessionRecord = z.object({
  role: z.enum(['tenant', 'operator']),
  tenantId: z.string().optional(),
  csrf: z.string(),
  /** SHA-256 of the ADMIN_TOKEN signed in with: a changed token ends operator sessions. */
  adminHash: z.string().optional(),
});
export type ConsoleSessionRecord = z.infer<typeof ConsoleSessionRecord>;

/** What a console request knows of its caller (res.locals.console). */
export interface ConsoleCaller {
  session: ConsoleSessionRecord;
  sessionKey: string;
  tenant?: Tenant;
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Locals {
      console: ConsoleCaller;
    }
  }
}

export interface SessionDeps {
  db: Db;
  redis: RedisClient;
  tenants: TenantCache;
  failures: AuthFailures;
  keyPrefix: string;
  adminToken?: string;
  /** CONSOLE_SESSION_HOURS, in ms. */
  sessionTtlMs: number;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export const SignIn = z.object({ api_key: z.string().min(1, 'must not be empty').max(512, 'is too long') });

export function consoleSessions(deps: SessionDeps) {
  const redisKey = (id: string) => `${deps.keyPrefix}:console-session:${sha256(id)}`;
  const adminHash = deps.adminToken ? sha256(deps.adminToken) : undefined;

  /** The caller of this request: the session and, for a tenant, the tenant (revoked: no session). */
  async function load(req: Request): Promise<ConsoleCaller | null> {
    const id = readCookie(req, SESSION_COOKIE);
    if (!id || id.length > 100) return null;
    const key = redisKey(id);
    const raw = await deps.redis.get(key);
    if (!raw) return null;
    const parsed = ConsoleSessionRecord.safeParse(JSON.parse(raw));
    if (!parsed.success) return null;
    const session = parsed.data;
    if (session.role === 'operator') return adminHash && session.adminHash === adminHash ? { session, sessionKey: key } : null;
    const tenant = session.tenantId ? await deps.db.tenant.findUnique({ where: { id: session.tenantId } }) : null;
    if (!tenant || tenant.revokedAt) return null;
    return { session, sessionKey: key, tenant };
  }

  return {
    /** POST /console/api/session: checks the key, opens a session, sets the cookie. */
    signIn: (async (req, res) => {
      const address = req.ip ?? '';
      const wait = deps.failures.blockedFor(address);
      if (wait > 0) throw new AppError('rate_limited', `too many failed sign-ins from this address; retry in ${Math.ceil(wait / 1000)} s`);
      const parsed = SignIn.safeParse(req.body);
      if (!parsed.success) throw invalidParameter(`api_key: ${parsed.error.issues[0].message}`);
      const given = parsed.data.api_key.trim();
      let session: ConsoleSessionRecord | null = null;
      let tenant: Tenant | null = null;
      const csrf = randomBytes(24).toString('base64url');
      if (deps.adminToken && safeEqual(given, deps.adminToken)) {
        session = { role: 'operator', csrf, adminHash };
      } else if (apiKeyShape(given) !== 'malformed') {
        tenant = await deps.tenants.byApiKeyHash(hashApiKey(given));
        if (tenant) session = { role: 'tenant', tenantId: tenant.id, csrf };
      }
      if (!session) {
        void deps.failures.record(address);
        throw new AppError('auth_invalid', 'API key not recognised: paste the api_key that `keys create` printed (or ADMIN_TOKEN)');
      }
      const id = randomBytes(32).toString('base64url');
      await deps.redis.set(redisKey(id), JSON.stringify(session), 'PX', deps.sessionTtlMs);
      res.cookie(SESSION_COOKIE, id, {
        httpOnly: true,
        sameSite: 'strict',
        secure: req.secure,
        path: COOKIE_PATH,
        maxAge: deps.sessionTtlMs,
      });
      res.json(sessionAnswer({ session, sessionKey: redisKey(id), tenant: tenant ?? undefined }, res.locals.requestId));
    }) satisfies RequestHandler,

    /** GET /console/api/session: who is signed in (401 when nobody). */
    current: (async (req, res) => {
      const caller = await load(req);
      if (!caller) throw new AppError('auth_missing', 'not signed in: sign in with your API key');
      res.json(sessionAnswer(caller, res.locals.requestId));
    }) satisfies RequestHandler,

    /** Every other console API route: a session is required; state-changing methods need the CSRF token. */
    require: (async (req, res, next) => {
      const caller = await load(req);
      if (!caller) throw new AppError('auth_missing', 'not signed in (or the session ended): sign in with your API key');
      if (!SAFE_METHODS.has(req.method)) {
        const token = req.get(CSRF_HEADER);
        if (!token || !safeEqual(token, caller.session.csrf)) {
          throw new AppError('auth_invalid', `missing or wrong ${CSRF_HEADER} header: reload the console and try again`);
        }
      }
      res.locals.console = caller;
      next();
    }) satisfies RequestHandler,

    /** DELETE /console/api/session: ends the session and clears the cookie. */
    signOut: (async (_req, res) => {
      await deps.redis.del(res.locals.console.sessionKey);
      clearCookie(res);
      res.json({ code: 0, message: 'SUCCEED', request_id: res.locals.requestId });
    }) satisfies RequestHandler,
  };
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The session as the page may see it: who is signed in, and the CSRF token to echo. */
export function sessionAnswer(caller: ConsoleCaller, requestId: string) {
  return {
    code: 0,
    message: 'SUCCEED',
    request_id: requestId,
    data: {
      role: caller.session.role,
      name: caller.tenant?.name ?? 'operator',
      csrf_token: caller.session.csrf,
    },
  };
}

function clearCookie(res: Response) {
  res.clearCookie(SESSION_COOKIE, { path: COOKIE_PATH, httpOnly: true, sameSite: 'strict' });
}

function readCookie(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
