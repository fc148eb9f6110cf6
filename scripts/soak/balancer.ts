import net from 'node:net';

/** What stands in front of the API processes: the address clients and the upstream's callbacks use. */
export interface Balancer {
  url: string;
  close(): Promise<void>;
}

/**
 * A TCP load balancer in front of the API processes, as a deployment has one: each connection goes
 * to the next API port in turn, or to the one after it when that one refuses (a killed process).
 * Connections to a process that dies are cut, as they would be.
 */
export async function startBalancer(ports: readonly number[]): Promise<Balancer> {
  let turn = 0;
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => undefined);
    const first = turn++ % ports.length;
    const connect = (tried: number) => {
      if (tried === ports.length || client.destroyed) return void client.destroy();
      const upstream = net.connect(ports[(first + tried) % ports.length], '127.0.0.1');
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        open.add(upstream);
        client.pipe(upstream);
        upstream.pipe(client);
      });
      upstream.on('error', () => (connected ? client.destroy() : connect(tried + 1)));
      upstream.on('close', () => {
        open.delete(upstream);
        if (connected) client.destroy();
      });
      client.on('close', () => upstream.destroy());
    };
    connect(0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
