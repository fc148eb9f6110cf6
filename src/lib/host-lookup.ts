import CacheableLookup from 'cacheable-lookup';

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
export const hostLookup = new CacheableLookup({ maxTtl: 300, errorTtl: 10 });
