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
