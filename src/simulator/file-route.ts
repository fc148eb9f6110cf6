import { createHash } from 'node:crypto';
import type { Request, Response } from 'express';
import type { TaskEngine } from './task-engine';

/**
 * Serves a succeeded task's result files with single byte ranges (206), as a CDN does: a
 * browser's video player seeks with Range requests. A multi-range request gets the whole file.
 */
export function serveResultFile(engine: TaskEngine) {
  return (req: Request, res: Response) => {
    const file = engine.file(String(req.params.taskId), String(req.params.name));
    if (!file) {
      res.status(404).type('text/plain').send('file not found');
      return;
    }
    // One validator for the whole file, so a player can join cached ranges (If-Range).
    const etag = `"${createHash('sha1').update(file.body).digest('base64url')}"`;
    res.type(file.contentType).set({ etag, 'cache-control': 'public, max-age=86400', 'accept-ranges': 'bytes' });
    const size = file.body.length;
    const ifRange = req.get('if-range');
    const ranges = ifRange === undefined || ifRange === etag ? req.range(size) : undefined;
    if (ranges === -1) {
      res.status(416).set('content-range', `bytes */${size}`).end();
      return;
    }
    if (ranges === undefined || ranges === -2 || ranges.type !== 'bytes' || ranges.length !== 1) {
      res.send(file.body);
      return;
    }
    const { start, end } = ranges[0];
    res
      .status(206)
      .set('content-range', `bytes ${start}-${end}/${size}`)
      .send(file.body.subarray(start, end + 1));
  };
}
