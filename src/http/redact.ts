/** The per-task callback token is a credential: it never reaches a log line. */
export function redactUrl(url: string): string {
  return url.replace(/^(\/callbacks\/kling\/[^/?]+\/)[^/?]+/, '$1[redacted]');
}
