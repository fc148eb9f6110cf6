import net from 'node:net';
import path from 'node:path';
import { Client } from 'pg';

/** Small helpers shared by the benchmark, the soak and the tests: local ports, one-off Postgres connections, child processes. */

/**
 * `node` arguments, before the script, that end a child process once the process that started it
 * is gone (exit-with-parent.cjs): for the long-lived processes the benchmark, the soak and the
 * tests start, which a driver killed with SIGKILL would otherwise leave running.
 */
export const EXIT_WITH_PARENT = ['--require', path.join(__dirname, 'exit-with-parent.cjs')];

/** A TCP port free on 127.0.0.1 right now (the caller binds it next). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** Runs `work` on a connection of its own, closed whatever happens. */
export async function withPg<T>(url: string, work: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}
