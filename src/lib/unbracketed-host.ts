/**
 * A URL's host as a resolver or a socket takes it. `URL.hostname` keeps the brackets of an IPv6
 * literal (`[::1]`), which neither accepts and no address check recognises.
 */
export function unbracketedHost(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '');
}
