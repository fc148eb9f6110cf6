/**
 * A URL fit for a log line: user and password replaced, and every query value (proxies take keys
 * there too) replaced. Anything that does not parse as a URL is replaced whole.
 */
export function redactCredentials(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return '[unparseable URL]';
  }
  if (url.username) url.username = 'redacted';
  if (url.password) url.password = 'redacted';
  for (const key of [...new Set(url.searchParams.keys())]) url.searchParams.set(key, 'redacted');
  return url.toString();
}

/** The per-task callback token is a credential: it never reaches a log line. */
export function redactUrl(url: string): string {
  return url.replace(/^(\/callbacks\/kling\/[^/?]+\/)[^/?]+/, '$1[redacted]');
}
