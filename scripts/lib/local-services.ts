import net from 'node:net';
import { Client } from 'pg';

/** Small helpers shared by the benchmark, the soak and the tests: local ports and one-off Postgres connections. */

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
