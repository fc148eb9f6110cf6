/**
 * Text that may reach Postgres. Postgres stores U+0000 in neither text nor jsonb (error 22021, a
 * 500 if it gets that far), so values from outside are checked for it before any query.
 */

export const hasNul = (s: string): boolean => s.includes('\0');

/**
 * Where a value holds a string with U+0000: its dotted path ('' for the value itself), or null
 * when there is none.
 */
export function pathOfNul(value: unknown, path = ''): string | null {
  if (typeof value === 'string') return hasNul(value) ? path : null;
  if (typeof value !== 'object' || value === null) return null;
  for (const [k, v] of Object.entries(value)) {
    if (hasNul(k)) return path ? `${path}.${k}` : k;
    const found = pathOfNul(v, path ? `${path}.${k}` : k);
    if (found !== null) return found;
  }
  return null;
}

/**
 * A percent-encoded string decoded, or null when it is not valid percent-encoded UTF-8: a stray or
 * truncated `%`, a non-hex escape, or escapes of bytes that are not UTF-8 (overlong forms such as
 * `%C0%80`, surrogates such as `%ED%A0%80`, a lone `%FF`).
 */
export function percentDecoded(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}
