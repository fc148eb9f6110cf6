import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { SIM_ACCOUNT_NAME } from '../lib/sim-account-name';
import { errorEnvelope } from './sim-error';
import { closeServer, createKlingSimulator, listenOn, urlHost } from './kling-simulator';
import type { KlingSimulator, SimulatorOptions } from './types';

/** One simulated Kling account: its name (the path it is served under), key and slot limits. */
export interface SimulatedAccountSpec {
  name: string;
  apiKey: string;
  /** Image slots (sum of n over unfinished image tasks); unset: unlimited. */
  imageSlots?: number;
  /** Video slots (one per unfinished video task); unset: unlimited. */
  videoSlots?: number;
}

export interface SimulatedAccounts {
  /** Each account's own simulator: its tasks, faults, requests and callbacks are its alone. */
  accounts: { name: string; sim: KlingSimulator }[];
  /** Serves every account on one port, account NAME under `/NAME`; returns the server's base URL. */
  listen(port?: number, host?: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * Several independent Kling accounts in one process, each at its own path prefix: account `a` of a
 * server on port 4001 has the base URL `http://127.0.0.1:4001/a`. Each has its own key, slot
 * limits and failure modes (`POST /a/sim/faults` with a's key), as separate Kling accounts would.
 */
export function createSimulatedAccounts(
  specs: readonly SimulatedAccountSpec[],
  options: Omit<SimulatorOptions, 'apiKey' | 'accessKey' | 'secretKey'> = {},
): SimulatedAccounts {
  assertValidSpecs(specs);
  const accounts = specs.map((spec) => {
    const sim = createKlingSimulator({ ...options, apiKey: spec.apiKey });
    sim.faults.concurrencyLimit = spec.imageSlots ?? Infinity;
    sim.faults.videoConcurrencyLimit = spec.videoSlots ?? Infinity;
    return { name: spec.name, sim };
  });
  const app = express();
  app.disable('x-powered-by');
  for (const { name, sim } of accounts) app.use(`/${name}`, sim.app);
  app.use((_req, res) => {
    const known = accounts.map((a) => `/${a.name}`).join(', ');
    res.status(404).json(errorEnvelope({ code: 1202, message: `invalid request method or path: no such account (accounts: ${known})` }));
  });
  let server: http.Server | undefined;

  return {
    accounts,
    async listen(port = 0, host = '127.0.0.1') {
      if (server) throw new Error('simulator is already listening');
      server = http.createServer(app);
      await listenOn(server, port, host);
      return `http://${urlHost(host)}:${(server.address() as AddressInfo).port}`;
    },
    async close() {
      for (const { sim } of accounts) await sim.close();
      if (server) await closeServer(server);
    },
  };
}

function assertValidSpecs(specs: readonly SimulatedAccountSpec[]): void {
  if (specs.length === 0) throw new Error('simulator: at least one account is needed');
  const names = new Set<string>();
  for (const spec of specs) {
    if (!SIM_ACCOUNT_NAME.test(spec.name)) throw new Error(`simulator: account name "${spec.name}" must match ${SIM_ACCOUNT_NAME}`);
    if (names.has(spec.name)) throw new Error(`simulator: account name "${spec.name}" is given twice`);
    names.add(spec.name);
    if (!spec.apiKey) throw new Error(`simulator: account "${spec.name}" needs a key`);
  }
}
