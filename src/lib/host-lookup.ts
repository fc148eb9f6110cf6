import CacheableLookup, { type EntryObject } from 'cacheable-lookup';
import { isIP } from 'node:net';
import { unbracketedHost } from './unbracketed-host';

/** The cache's answers by host name: addresses, or none for a name the resolver says does not exist. */
const answers = new Map<string, EntryObject[]>();

/**
 * Name resolution for outgoing requests to hosts the service does not choose: the upstream's file
 * hosts and client webhook receivers. Each name is asked once per its DNS TTL (at most 5 minutes);
 * concurrent asks for one name share one query; a name that does not exist is remembered for 10 s.
 *
 * Without it every download and delivery resolves on its own through libuv's four-thread pool, which
 * file I/O shares: a burst of tasks whose outputs sit on one host made as many lookups, and a
 * resolver that answers slowly (a 5 s retry) held up every copy and every spool write behind them.
 * Names the resolver does not know (`localhost`, /etc/hosts) fall back to the system's lookup.
 */
export const hostLookup = new CacheableLookup({ cache: answers, maxTtl: 300, errorTtl: 10 });

/** The host name of a URL when it is a name (not an IP address), else null. */
function hostNameOf(url: string): string | null {
  if (!URL.canParse(url)) return null;
  const name = unbracketedHost(new URL(url));
  return isIP(name) ? null : name;
}

/** Whether this process asked for the URL's host name within the last 10 s and was told it does not exist. */
export function knownNotToResolve(url: string): boolean {
  const name = hostNameOf(url);
  return name !== null && answers.get(name)?.length === 0;
}

/** Starts lookups of the URLs' host names not in the cache, without waiting for them (so `knownNotToResolve` can answer next time). */
export function lookUpAhead(urls: string[]): void {
  for (const name of new Set(urls.map(hostNameOf)))
    if (name !== null && !answers.has(name)) hostLookup.lookupAsync(name).catch(() => undefined);
}
