import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';

/** A caller's id is reused only when it is short and plain, so it cannot inject into logs or headers. */
const SAFE_ID = /^[A-Za-z0-9._-]{8,128}$/;

export const requestId: RequestHandler = (req, res, next) => {
  const given = req.get('x-request-id');
  const id = given && SAFE_ID.test(given) ? given : randomUUID();
  res.locals.requestId = id;
  res.set('x-request-id', id);
  next();
};
