import { Writable } from 'node:stream';
import pino from 'pino';
import type { Logger } from '../../src/logger';

/** A real pino logger whose lines (JSON, one per entry) are kept in `lines` for the test to read. */
export function capturingLogger(level: pino.Level = 'info'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { logger: pino({ level }, sink), lines };
}
