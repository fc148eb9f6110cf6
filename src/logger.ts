import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * JSON lines by default; fields that could carry secrets or whole images are redacted wherever
 * they appear, so a careless `log.info({ req })` cannot leak them.
 */
export function createLogger(level: string, base: Record<string, unknown> = {}, pretty = false): Logger {
  return pino({
    // A person at a terminal gets readable lines; everything else (files, pipes, collectors) JSON.
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } } : {}),
    level,
    base: { service: 'kling-tracker', ...base },
    redact: {
      paths: [
        'req.headers.authorization',
        'headers.authorization',
        'authorization',
        '*.api_key',
        '*.secret_key',
        '*.webhook_secret',
        '*.image',
        'body.image',
        'request.image',
      ],
      censor: '[redacted]',
    },
  });
}
