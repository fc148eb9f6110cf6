import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { AppError, errorAnswer, type ErrorName } from '../errors';

/** Parser refusals that are not plain malformed requests, by Node's error code. */
const PARSER_REFUSALS: Record<string, [ErrorName, string]> = {
  HPE_HEADER_OVERFLOW: ['headers_too_large', 'request line and headers are too large'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: ['payload_too_large', 'chunk extensions are too large'],
  ERR_HTTP_REQUEST_TIMEOUT: ['request_timeout', 'the request did not arrive in time'],
};

/**
 * Requests Node answers itself before the app sees them, by default with a bare status line: what
 * its parser refuses ('clientError': a NUL or control byte in a header, a malformed request line,
 * headers over the limit, a request too slow to arrive), an Expect other than 100-continue, and
 * CONNECT (just closed). They get Kling's error body here, and the connection is closed.
 */
export function answerRequestsNodeRefuses(server: Server): void {
  server.on('clientError', (err: Error & { code?: string; reason?: unknown }, socket: Duplex) => {
    if (err.code === 'ECONNRESET') return void socket.destroy();
    const [kind, message] = PARSER_REFUSALS[err.code ?? ''] ?? [
      'invalid_request',
      `malformed HTTP request${typeof err.reason === 'string' ? `: ${err.reason}` : ''}`,
    ];
    answerOnSocket(socket, new AppError(kind, message));
  });
  server.on('checkExpectation', (_req, res: ServerResponse) => {
    const requestId = randomUUID();
    const { status, body } = errorAnswer(new AppError('expectation_failed', 'Expect: only 100-continue is supported'), requestId);
    const json = JSON.stringify(body);
    res.writeHead(status, { ...jsonHeaders(json, requestId), connection: 'close' }).end(json);
  });
  server.on('connect', (_req, socket: Duplex) => {
    // Node has taken its own error listener off a CONNECT socket: an unhandled error would crash the process.
    socket.on('error', () => socket.destroy());
    answerOnSocket(socket, new AppError('invalid_request', 'malformed request: CONNECT is not supported'));
  });
}

function answerOnSocket(socket: Duplex, e: AppError): void {
  const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  // A pipelined request's refusal follows the answer to the complete request before it, never cuts into it.
  const pipelined = inFlight?.req.complete === true;
  if (pipelined && !inFlight.writableFinished) return void inFlight.once('finish', () => answerOnSocket(socket, e));
  // A broken body replaces the answer to its own request, unless that answer has begun (then, as Node does, the connection just ends).
  if (!socket.writable || (!pipelined && inFlight?.headersSent)) return void socket.destroy();
  const requestId = randomUUID();
  const { status, body } = errorAnswer(e, requestId);
  const json = JSON.stringify(body);
  const fields = Object.entries({ ...jsonHeaders(json, requestId), connection: 'close' }).map(([k, v]) => `${k}: ${v}`);
  const head = [`HTTP/1.1 ${status} ${STATUS_CODES[status]}`, ...fields];
  // Closed once written: the server's sockets are half-open, and a client still sending must not keep this one.
  socket.once('finish', () => socket.destroy());
  socket.end(`${head.join('\r\n')}\r\n\r\n${json}`);
}

const jsonHeaders = (json: string, requestId: string) => ({
  'content-type': 'application/json; charset=utf-8',
  'content-length': String(Buffer.byteLength(json)),
  'x-request-id': requestId,
});
