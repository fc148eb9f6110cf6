import { Router, type Response } from 'express';
import rangeParser from 'range-parser';
import type { Db } from '../db/client';
import { AppError } from '../errors';
import type { Logger } from '../logger';
import { metrics } from '../observability/metrics';
import type { BlobStore, ByteRange } from '../results/blob-store';
import { FILES_PATH, type FileLinks } from '../results/file-links';
import { findServedFile, type ServedFile } from '../results/result-files';

export interface FilesDeps {
  db: Db;
  blobs: BlobStore;
  links: FileLinks;
  log: Logger;
}

const FILE_NAME = /^([0-9a-f-]{36})\.([a-z0-9]{2,5})$/;
/** Browsers and proxies keep a file at most this long (and never past its link's expiry). */
const MAX_CACHE_S = 86_400;

/**
 * `GET /v1/files/<id>.<ext>?expires=&signature=`: a stored copy, for anyone holding a valid link (no
 * Authorization: an `<img>` or `<video>` cannot send one). Proxied from the blob store, S3 too: one
 * link format signed by this service, a bucket that stays private, and ranges served the same way.
 */
export function filesRouter(deps: FilesDeps): Router {
  const r = Router();
  r.get(`${FILES_PATH}/:name`, async (req, res) => {
    const m = FILE_NAME.exec(req.params.name);
    if (!m) return refuse('invalid', new AppError('not_found', 'no such file'));
    const [, id, ext] = m;
    const q = (name: string) => (typeof req.query[name] === 'string' ? (req.query[name] as string) : undefined);
    const check = deps.links.check(`${FILES_PATH}/${id}.${ext}`, q('expires'), q('signature'));
    if (check === 'invalid') return refuse('invalid', new AppError('link_invalid', 'the link signature is not valid'));
    if (check === 'expired')
      return refuse('expired', new AppError('link_expired', 'the link has expired; read the task again for a fresh one'));
    const file = await findServedFile(deps.db, id);
    if (!file || (file.expiresAt && file.expiresAt.getTime() <= Date.now())) {
      return refuse('gone', new AppError('file_gone', "this file has been deleted (the tenant's retention)"));
    }
    setHeaders(res, file, Number(q('expires')));
    if (req.get('if-none-match') === `"${file.sha256}"`) {
      metrics.resultFileReads.inc({ outcome: 'not_modified' });
      return void res.status(304).end();
    }
    const range = requestedRange(req.get('range'), file.size);
    if (range === 'unsatisfiable') {
      res.set('content-range', `bytes */${file.size}`);
      return refuse('invalid', new AppError('range_not_satisfiable', `range: outside the file's ${file.size} bytes`));
    }
    if (range) {
      res.status(206).set('content-range', `bytes ${range.start}-${range.end}/${file.size}`);
      res.set('content-length', String(range.end - range.start + 1));
    } else {
      res.set('content-length', String(file.size));
    }
    if (req.method === 'HEAD') return void res.end();
    await stream(deps, res, file, range);
    metrics.resultFileReads.inc({ outcome: range ? 'partial' : 'ok' });
  });
  return r;
}

function refuse(outcome: string, err: AppError): never {
  metrics.resultFileReads.inc({ outcome });
  throw err;
}

function setHeaders(res: Response, file: ServedFile, expires: number): void {
  const maxAge = Math.max(0, Math.min(MAX_CACHE_S, Math.floor(expires - Date.now() / 1000)));
  res.set({
    'content-type': file.contentType,
    'accept-ranges': 'bytes',
    etag: `"${file.sha256}"`,
    'cache-control': `private, max-age=${maxAge}, immutable`,
    'x-content-type-options': 'nosniff',
    // Results are embedded by clients' own pages (`<img>`, `<video>` on another origin).
    'cross-origin-resource-policy': 'cross-origin',
  });
}

/** One byte range (a request for several gets the whole file, which HTTP allows); undefined: the whole file. */
function requestedRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const ranges = rangeParser(size, header, { combine: true });
  if (ranges === -1) return 'unsatisfiable';
  if (ranges === -2 || ranges.type !== 'bytes' || ranges.length !== 1) return undefined;
  return { start: ranges[0].start, end: ranges[0].end };
}

async function stream(deps: FilesDeps, res: Response, file: ServedFile, range: ByteRange | undefined): Promise<void> {
  let body;
  try {
    body = await deps.blobs.read(file.storageKey, range);
  } catch (err) {
    deps.log.error({ err: (err as Error).message, key: file.storageKey }, 'stored file unreadable');
    refuse('error', new AppError('unavailable', 'the file cannot be read now; try again'));
  }
  await new Promise<void>((resolve) => {
    body.once('error', (err) => {
      deps.log.error({ err: err.message, key: file.storageKey }, 'stored file read failed mid-answer');
      res.destroy(err);
      resolve();
    });
    res.once('close', () => {
      body.destroy();
      resolve();
    });
    body.pipe(res);
  });
}
