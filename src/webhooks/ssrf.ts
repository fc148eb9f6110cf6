import ipaddr from 'ipaddr.js';
import http, { type Agent } from 'node:http';
import https from 'node:https';
import { RequestFilteringHttpAgent, RequestFilteringHttpsAgent } from 'request-filtering-agent';
import { hostLookup } from '../lib/host-lookup';
import { unbracketedHost } from '../lib/unbracketed-host';

/**
 * Client webhook URLs must not reach this service's own network: loopback, private, link-local
 * (cloud metadata at 169.254.169.254), carrier-grade NAT, multicast, reserved and the like.
 * Checked when a task is created (with a clear 400) and again at every delivery (DNS can change
 * between the two), unless WEBHOOK_ALLOW_PRIVATE_NETWORKS is set.
 */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  let addr = ipaddr.parse(address);
  // ::ffff:10.0.0.1 is 10.0.0.1.
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) addr = (addr as ipaddr.IPv6).toIPv4Address();
  return addr.range() === 'unicast';
}

/** Null when every address the URL's host resolves to is public; otherwise why it is refused. */
export async function checkPublicUrl(url: string): Promise<string | null> {
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return 'must be an http(s) URL';
  const host = unbracketedHost(parsed);
  let addresses: string[];
  try {
    addresses = ipaddr.isValid(host) ? [host] : (await hostLookup.lookupAsync(host, { all: true })).map((a) => a.address);
  } catch {
    return `host "${host.slice(0, 100)}" does not resolve`;
  }
  const blocked = addresses.find((a) => !isPublicAddress(a));
  return blocked ? `points at a private, loopback, link-local or reserved address (${blocked}); webhooks only go to public hosts` : null;
}

/**
 * Connections to receivers are kept alive and reused: a webhook per status change to the same
 * receiver should not cost a TCP (and TLS) handshake each. The filtering agents check the address
 * of every new connection; a reused one was checked when it was opened. Names are resolved through
 * the shared cache (`hostLookup`), whose answers the filtering agents check like any other.
 */
const agents = {
  filtered: { http: new RequestFilteringHttpAgent({ keepAlive: true }), https: new RequestFilteringHttpsAgent({ keepAlive: true }) },
  open: { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) },
};
for (const pair of Object.values(agents)) for (const agent of Object.values(pair)) hostLookup.install(agent);

/**
 * The agent for a parsed URL: one that refuses to connect to a non-public address (checked on the
 * resolved IP) unless allowed. Chosen from `url.protocol`, as the request module is: a scheme
 * written `HTTPS:` must not get the plain agent.
 */
export function deliveryAgent(url: URL, allowPrivate: boolean): Agent {
  const pair = allowPrivate ? agents.open : agents.filtered;
  return url.protocol === 'https:' ? pair.https : pair.http;
}
