import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, type AppDeps } from './app';
import { answerRequestsNodeRefuses } from './http/node-refusals';

export interface RunningServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** Starts the HTTP API. `close` stops taking connections and waits for in-flight requests. */
export async function startServer(deps: AppDeps, port: number, host: string): Promise<RunningServer> {
  // Without Host, an HTTP/1.1 request reaches the app, which refuses it with a Kling body (Node's own answer has none).
  const server = createServer({ requireHostHeader: false }, createApp(deps));
  answerRequestsNodeRefuses(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port: actual } = server.address() as AddressInfo;
  return {
    server,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${actual}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
