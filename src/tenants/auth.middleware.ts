import type { RequestHandler } from 'express';
import jwt from 'jsonwebtoken';
import type { Tenant } from '../db/client';
import { AppError } from '../errors';
import type { SecretBox } from './secret-box';
import type { TenantCache } from './tenant-cache';

/** Clock skew tolerated on a client's JWT exp/nbf, in seconds. */
const CLOCK_TOLERANCE_SEC = 5;

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Locals {
      tenant: Tenant;
      requestId: string;
    }
  }
}

/**
 * Authenticates a tenant exactly as Kling does: `Authorization: Bearer <api_key>`, or a Bearer
 * HS256 JWT `{iss: access_key, exp, nbf}` signed with the tenant's secret_key.
 */
export function authenticate(tenants: TenantCache, secrets: SecretBox): RequestHandler {
  return async (req, res, next) => {
    const header = req.get('authorization');
    if (!header) return next(new AppError('auth_missing', 'Authorization header is missing'));
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) return next(new AppError('auth_invalid', 'Authorization header must be "Bearer <token>"'));
    const token = m[1];
    const tenant = looksLikeJwt(token) ? await tenantFromJwt(tenants, secrets, token) : await tenants.byApiKey(token);
    if (!tenant) return next(new AppError('auth_invalid', 'invalid credentials'));
    res.locals.tenant = tenant;
    next();
  };
}

function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}

async function tenantFromJwt(tenants: TenantCache, secrets: SecretBox, token: string): Promise<Tenant | null> {
  const claims = jwt.decode(token);
  const iss = claims && typeof claims === 'object' ? claims.iss : undefined;
  if (typeof iss !== 'string' || !iss) return null;
  const tenant = await tenants.byAccessKey(iss);
  if (!tenant) return null;
  try {
    const verified = jwt.verify(token, secrets.open(tenant.secretKey), { algorithms: ['HS256'], clockTolerance: CLOCK_TOLERANCE_SEC });
    // Kling's tokens always expire; one without `exp` would be a credential forever.
    return typeof verified === 'object' && typeof verified.exp === 'number' ? tenant : null;
  } catch (err) {
    if (err instanceof jwt.TokenExpiredError) throw new AppError('token_expired', 'token expired');
    if (err instanceof jwt.NotBeforeError) throw new AppError('token_not_yet_valid', 'token not yet valid');
    return null;
  }
}
