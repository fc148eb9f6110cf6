import jwt from 'jsonwebtoken';
import { KlingApiError, klingErrors } from './sim-error';

export interface AuthConfig {
  apiKey?: string;
  accessKey?: string;
  secretKey?: string;
}

/** Returns the error Kling would answer for this Authorization header, or undefined if accepted. */
export function checkAuthorization(header: string | undefined, config: AuthConfig): KlingApiError | undefined {
  if (!header || header.trim() === '') return klingErrors.authEmpty();
  const match = /^Bearer\s+(\S.*)$/i.exec(header.trim());
  if (!match) return header.trim().toLowerCase() === 'bearer' ? klingErrors.authEmpty() : klingErrors.authInvalid();
  const token = match[1].trim();

  const open = !config.apiKey && !config.accessKey;
  if (open) return undefined;
  if (config.apiKey && token === config.apiKey) return undefined;
  if (config.accessKey && config.secretKey) return checkJwt(token, config.accessKey, config.secretKey);
  return klingErrors.authInvalid();
}

// jsonwebtoken checks the signature before nbf/exp, so a forged token is "invalid" (1002) and
// only a genuine but badly timed token earns the retryable 1003/1004.
function checkJwt(token: string, accessKey: string, secretKey: string): KlingApiError | undefined {
  try {
    const payload = jwt.verify(token, secretKey, { algorithms: ['HS256'] });
    if (typeof payload === 'string' || payload.iss !== accessKey) return klingErrors.authInvalid();
    // Kling's token recipe always carries exp; a token without one would never expire.
    if (typeof payload.exp !== 'number') return klingErrors.authInvalid();
    return undefined;
  } catch (error) {
    if (error instanceof jwt.NotBeforeError) return klingErrors.tokenNotYetValid();
    if (error instanceof jwt.TokenExpiredError) return klingErrors.tokenExpired();
    return klingErrors.authInvalid();
  }
}
