import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../generated/prisma/client';

export type Db = PrismaClient;
export { Prisma } from '../generated/prisma/client';
export type { Task, Tenant, TaskEvent } from '../generated/prisma/client';
export { TaskState } from '../generated/prisma/enums';

export function createDb(databaseUrl: string, poolSize = 10): Db {
  return new PrismaClient({
    adapter: new PrismaPg({
      connectionString: databaseUrl,
      max: poolSize,
      // Fail fast while Postgres is down instead of queueing requests behind a dead pool.
      connectionTimeoutMillis: 5_000,
    }),
  });
}

/** Prisma's "unique constraint failed" (e.g. a duplicate external_task_id racing in). */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === 'P2002';
}

/** Prisma's "record to update not found", which a conditional update raises when its guard fails. */
export function isRecordNotFound(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === 'P2025';
}
