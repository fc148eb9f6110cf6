import net from 'node:net';

/** Percent-escapes that do not decode to UTF-8: a stray `%`, non-hex, truncated, a stray byte, overlong NUL, a surrogate. */
export const UNDECODABLE = ['%', '%zz', '%E0%A4%A', '%FF', '%C0%80', '%ED%A0%80'];

/** True when an answer is a Kling refusal: 4xx with a JSON body {code != 0, message, request_id}. */
export function isKlingRefusal(status: number, body: unknown): boolean {
  const b = (body ?? {}) as { code?: unknown; message?: unknown; request_id?: unknown };
  return (
    status >= 400 &&
    status < 500 &&
    typeof b.code === 'number' &&
    b.code !== 0 &&
    typeof b.message === 'string' &&
    typeof b.request_id === 'string' &&
    b.request_id.length > 0
  );
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  /** The body parsed as JSON (null when it is not JSON). */
  body: unknown;
  text: string;
}

/**
 * Writes `head` byte for byte (latin1) on a fresh connection, for requests no HTTP client will
 * send (a NUL in a header, a broken request line), and reads the answer until the server closes
 * the connection. Rejects when the server keeps it open: every answer here must close it.
 */
export function rawRequest(baseUrl: string, head: string, timeoutMs = 5_000): Promise<RawAnswer> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(Buffer.from(head, 'latin1')));
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server did not close the connection within ${timeoutMs} ms; got: ${Buffer.concat(chunks).toString()}`));
    }, timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      try {
        resolve(parseAnswer(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        reject(err);
      }
    });
  });
}

function parseAnswer(raw: string): RawAnswer {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no HTTP answer, got: ${JSON.stringify(raw)}`);
  const [statusLine, ...lines] = raw.slice(0, end).split('\r\n');
  const headers = Object.fromEntries(
    lines.map((l) => [l.slice(0, l.indexOf(':')).trim().toLowerCase(), l.slice(l.indexOf(':') + 1).trim()] as const),
  );
  const text = raw.slice(end + 4);
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: left null, which no shape check accepts
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body, text };
}
