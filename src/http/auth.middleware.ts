import type { Request, RequestHandler } from 'express';
import jwt from 'jsonwebtoken';
import type { Tenant } from '../db/client';
import { AppError } from '../errors';
import type { AuthFailures } from './auth-failures';
import { apiKeyShape } from '../tenants/api-key';
import { sealContext, type SecretBox } from '../tenants/secret-box';
import type { TenantCache } from '../tenants/tenant-cache';
import { hashApiKey } from '../tenants/tenants.service';

/** Clock skew tolerated on a client's JWT exp/nbf, in seconds. */
const CLOCK_TOLERANCE_SEC = 5;
/** Longest `iss` (access key) looked up; ours are 27 characters. */
const MAX_ISSUER_CHARS = 128;

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Locals {
      tenant: Tenant;
      requestId: string;
    }
  }
}

export interface AuthOptions {
  tenants: TenantCache;
  secrets: SecretBox;
  failures: AuthFailures;
  /** JWT_MAX_LIFETIME_S: a client JWT valid for longer than this is refused. */
  jwtMaxLifetimeSec: number;
}

/**
 * Authenticates a tenant exactly as Kling does: `Authorization: Bearer <api_key>`, or a Bearer
 * HS256 JWT `{iss: access_key, exp, nbf}` signed with the tenant's secret_key. Runs before any body
 * is read. A credential this process already knows is decided without a query; a malformed key
 * (its checksum fails) without one either; an address over its failed-authentication limit gets
 * 429 before any lookup.
 */
export function authenticate(opts: AuthOptions): RequestHandler {
  return async (req, res, next) => {
    const address = req.ip ?? '';
    const refuse = (err: AppError) => {
      // An unread body of a refused request is not worth receiving: the connection closes after the answer.
      if (hasBody(req)) res.set('connection', 'close');
      next(err);
    };
    const fail = (err: AppError) => {
      void opts.failures.record(address);
      refuse(err);
    };
    const header = req.get('authorization');
    const bearer = header === undefined ? undefined : /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
    const credential = bearer === undefined ? null : parseCredential(bearer);
    const known = !credential
      ? undefined
      : credential.kind === 'api_key'
        ? opts.tenants.peekApiKeyHash(credential.hash)
        : opts.tenants.peekAccessKey(credential.iss);
    // Only a credential known to be valid passes an address over its limit.
    if (!known) {
      const wait = opts.failures.blockedFor(address);
      if (wait > 0) return refuse(tooManyFailures(wait));
    }
    if (header === undefined) return fail(new AppError('auth_missing', 'Authorization header is missing'));
    if (bearer === undefined) return fail(new AppError('auth_invalid', 'Authorization header must be "Bearer <token>"'));
    if (!credential) return fail(new AppError('auth_invalid', 'invalid credentials'));
    try {
      const tenant =
        credential.kind === 'api_key'
          ? (known ?? (await opts.tenants.byApiKeyHash(credential.hash)))
          : await tenantFromJwt(opts, credential.token, credential.iss, known);
      if (!tenant) return fail(new AppError('auth_invalid', 'invalid credentials'));
      res.locals.tenant = tenant;
      next();
    } catch (err) {
      if (err instanceof AppError) return fail(err);
      next(err);
    }
  };
}

type Credential = { kind: 'api_key'; hash: string } | { kind: 'jwt'; token: string; iss: string };

/** What the token claims to be, without any lookup; null when it cannot be a credential of ours. */
function parseCredential(token: string): Credential | null {
  if (looksLikeJwt(token)) {
    const claims = jwt.decode(token);
    const iss = claims && typeof claims === 'object' ? claims.iss : undefined;
    return typeof iss === 'string' && iss.length > 0 && iss.length <= MAX_ISSUER_CHARS ? { kind: 'jwt', token, iss } : null;
  }
  return apiKeyShape(token) === 'malformed' ? null : { kind: 'api_key', hash: hashApiKey(token) };
}

function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}

async function tenantFromJwt(opts: AuthOptions, token: string, iss: string, known: Tenant | null | undefined): Promise<Tenant | null> {
  const tenant = known === undefined ? await opts.tenants.byAccessKey(iss) : known;
  if (!tenant) return null;
  let verified: string | jwt.JwtPayload;
  try {
    const secret = opts.secrets.open(tenant.secretKey, sealContext(tenant.id, 'secret_key'));
    verified = jwt.verify(token, secret, { algorithms: ['HS256'], clockTolerance: CLOCK_TOLERANCE_SEC });
  } catch (err) {
    if (err instanceof jwt.TokenExpiredError) throw new AppError('token_expired', 'token expired');
    if (err instanceof jwt.NotBeforeError) throw new AppError('token_not_yet_valid', 'token not yet valid');
    return null;
  }
  // Kling's tokens always expire; one without `exp` would be a credential forever.
  if (typeof verified !== 'object' || typeof verified.exp !== 'number') return null;
  // Nor may one live for days: a leaked long-lived token is as good as the secret key.
  const from = typeof verified.nbf === 'number' ? verified.nbf : Math.floor(Date.now() / 1000);
  if (verified.exp - from > opts.jwtMaxLifetimeSec) {
    throw new AppError('auth_invalid', `token lifetime (exp - nbf) exceeds ${opts.jwtMaxLifetimeSec} s; sign tokens that expire sooner`);
  }
  return tenant;
}

const hasBody = (req: Request) => Number(req.get('content-length') ?? 0) > 0 || req.get('transfer-encoding') !== undefined;

function tooManyFailures(waitMs: number): AppError {
  const retryAfter = Math.max(1, Math.ceil(waitMs / 1000));
  return new AppError('rate_limited', `too many failed authentications from this address; retry in ${retryAfter} s`, {
    'retry-after': String(retryAfter),
  });
}
