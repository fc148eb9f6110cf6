import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { RedisClient } from '../lib/redis-client';
import { unbracketedHost } from '../lib/unbracketed-host';

/** Where Redis is: one server at `url`, or a Redis Cluster that `url` (any of its nodes) introduces. */
export interface RedisTarget {
  url: string;
  cluster: boolean;
}

interface ConnectionRole {
  /** False: a command sent while disconnected fails at once instead of waiting in memory. */
  enableOfflineQueue: boolean;
  maxRetriesPerRequest: number | null;
}

/** Producers fail fast while Redis is down: Postgres has the work, and the sweep enqueues it later. */
const PRODUCER: ConnectionRole = { enableOfflineQueue: false, maxRetriesPerRequest: 1 };
/** BullMQ requires blocking commands to wait forever across reconnects (and failovers). */
const WORKER: ConnectionRole = { enableOfflineQueue: true, maxRetriesPerRequest: null };

export const createProducerConnection = (target: RedisTarget): RedisClient => connect(target, PRODUCER);
/** One per BullMQ worker: it blocks on reads. */
export const createWorkerConnection = (target: RedisTarget): RedisClient => connect(target, WORKER);
/** For SUBSCRIBE, which holds its connection. */
export const createSubscriberConnection = (target: RedisTarget): RedisClient => connect(target, WORKER);

/**
 * After a managed primary fails over, a connection may still reach the old primary, now a replica
 * refusing writes: reconnecting (through DNS, to the new primary) and resending the command fixes it.
 */
const reconnectOnReadOnly = (err: Error) => (err.message.startsWith('READONLY') ? 2 : false);

function connect(target: RedisTarget, role: ConnectionRole): RedisClient {
  if (!target.cluster) return new Redis(target.url, { ...role, lazyConnect: false, reconnectOnError: reconnectOnReadOnly });
  const url = new URL(target.url);
  const tls = url.protocol === 'rediss:';
  // Nodes found through CLUSTER SLOTS get only `redisOptions`: the seed URL's credentials and TLS go there.
  const redisOptions: RedisOptions = {
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    tls: tls ? {} : undefined,
    maxRetriesPerRequest: role.maxRetriesPerRequest,
  };
  return new Cluster([{ host: unbracketedHost(url), port: Number(url.port || 6379) }], {
    enableOfflineQueue: role.enableOfflineQueue,
    redisOptions,
    // With TLS, connect by host name, not by its resolved address: the certificate names the host.
    dnsLookup: tls ? (address, callback) => callback(null, address) : undefined,
  });
}
