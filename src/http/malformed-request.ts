import type { RequestHandler } from 'express';
import { AppError, invalidParameter } from '../errors';
import { percentDecoded } from '../lib/text';

/**
 * Refuses, before any route, a request URL whose percent-escapes are malformed or not UTF-8. Left
 * alone, the router fails to decode such a path parameter, and the query parser silently turns
 * such a value into U+FFFD, so a lookup would run on text the client never sent. Also refuses an
 * HTTP/1.1 request without Host (the server lets it through so that the answer is ours).
 */
export const refuseMalformedRequest: RequestHandler = (req, _res, next) => {
  if (req.headers.host === undefined && req.httpVersion === '1.1') {
    return next(new AppError('invalid_request', 'malformed request: HTTP/1.1 requires a Host header'));
  }
  // Only an escape can fail to decode: the HTTP parser lets no raw byte outside ASCII into the URL.
  if (!req.url.includes('%')) return next();
  const q = req.url.indexOf('?');
  const path = q < 0 ? req.url : req.url.slice(0, q);
  if (percentDecoded(path) === null) {
    return next(new AppError('invalid_request', 'malformed request: the path is not valid percent-encoded UTF-8'));
  }
  next(q < 0 ? undefined : queryProblem(req.url.slice(q + 1)));
};

/** The first query parameter that does not decode (as the query parser reads it: `+` is a space). */
function queryProblem(query: string): AppError | undefined {
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    const [key, value] = eq < 0 ? [pair, ''] : [pair.slice(0, eq), pair.slice(eq + 1)];
    const name = percentDecoded(key.replaceAll('+', ' '));
    if (name === null) return new AppError('invalid_request', 'malformed request: the query is not valid percent-encoded UTF-8');
    if (percentDecoded(value.replaceAll('+', ' ')) === null)
      return invalidParameter(`${name.slice(0, 100) || 'query'}: is not valid percent-encoded UTF-8`);
  }
  return undefined;
}
