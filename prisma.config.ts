// Config for the Prisma 6.19 CLI (generate, migrate diff, migrate deploy).
// `engine: 'js'` runs the WebAssembly schema engine: no native binary is downloaded. Its
// `migrate deploy` only works with the 7.x pg adapter (the 6.19 one fails on the `name` column
// type, prisma/orm#27403), hence the `adapter-pg7` alias. See README, "Development".
import path from 'node:path';
import { defineConfig } from 'prisma/config';
import { PrismaPg } from 'adapter-pg7';

const url = process.env.DATABASE_URL ?? 'postgresql://postgres:postgres@127.0.0.1:5432/kling_tracker';

export default defineConfig({
  experimental: { adapter: true },
  engine: 'js',
  schema: path.join('prisma', 'schema.prisma'),
  migrations: { path: path.join('prisma', 'migrations') },
  adapter: async () => wholeScripts(new PrismaPg({ connectionString: url, allowExitOnIdle: true, idleTimeoutMillis: 100 })) as never,
});

/**
 * The adapter runs a migration by splitting its SQL on every ';', even inside comments and function
 * bodies (migration `slot_claims` has a PL/pgSQL function). Send each script whole instead: one
 * simple-protocol query, which Postgres also runs as one transaction.
 */
function wholeScripts(factory: PrismaPg): PrismaPg {
  const connect = factory.connect.bind(factory);
  factory.connect = async () => {
    const adapter = await connect();
    const client = adapter.underlyingDriver();
    const onError = (adapter as unknown as { onError(err: unknown): never }).onError.bind(adapter);
    adapter.executeScript = async (script: string) => {
      await client.query(script).catch(onError);
    };
    return adapter;
  };
  return factory;
}
