import type { Cluster, Redis } from 'ioredis';

/** A connection to one Redis server or to a Redis Cluster (REDIS_CLUSTER); both speak the same commands. */
export type RedisClient = Redis | Cluster;
