import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CallbackDispatcher } from './callback-dispatcher';
import { createFaults, defaultFaults } from './faults';
import { RequestGate } from './request-gate';
import { buildSimApp } from './sim-app';
import { simulatorKinds } from './sim-kinds';
import { TaskEngine } from './task-engine';
import type { KlingSimulator, ReceivedRequest, SentCallback, SimulatorOptions } from './types';
import { WorkTracker } from './work-tracker';

export * from './types';
export { renderPng } from '../kinds/image-generation/sim-png';

/**
 * An in-memory stand-in for Kling's task API (image generation, text-to-video, image-to-video):
 * same paths, auth, envelopes, status machine and callbacks, plus switchable faults so clients
 * can be tested against upstream misbehaviour.
 */
export function createKlingSimulator(options: SimulatorOptions = {}): KlingSimulator {
  const models = options.models ?? ['kling-v3'];
  const videoModels = options.videoModels ?? ['kling-v3'];
  assertValidOptions(options, models, videoModels);
  const log = options.log ?? (() => {});
  const tracker = new WorkTracker();
  const gate = new RequestGate();
  const faults = createFaults(() => gate.releaseHung());
  const received: ReceivedRequest[] = [];
  const accountRequests: ReceivedRequest[] = [];
  const callbacks: SentCallback[] = [];
  const dispatcher = new CallbackDispatcher({
    faults,
    tracker,
    log,
    record: (callback) => callbacks.push(callback),
    callbackSecret: options.callbackSecret,
  });
  let server: http.Server | undefined;
  let closed = false;

  const engine = new TaskEngine({
    faults,
    tracker,
    dispatcher,
    log,
    processingAfterMs: options.processingAfterMs ?? 300,
    finishAfterMs: options.finishAfterMs ?? 700,
    fileBaseUrl: () => sim.fileBaseUrl,
  });
  const app = buildSimApp({
    engine,
    gate,
    faults,
    kinds: simulatorKinds(models, videoModels),
    received,
    accountRequests,
    log,
    auth: { apiKey: options.apiKey, accessKey: options.accessKey, secretKey: options.secretKey },
    isClosed: () => closed,
  });

  const sim: KlingSimulator = {
    app,
    faults,
    tasks: engine.tasks,
    received,
    accountRequests,
    callbacks,
    fileBaseUrl: undefined,
    async listen(port = 0, host = '127.0.0.1') {
      if (server) throw new Error('simulator is already listening');
      if (closed) throw new Error('simulator is closed');
      server = http.createServer(app);
      await listenOn(server, port, host);
      const baseUrl = `http://${urlHost(host)}:${(server.address() as AddressInfo).port}`;
      sim.fileBaseUrl = baseUrl;
      log('simulator listening', { baseUrl });
      return baseUrl;
    },
    async close() {
      if (closed) return;
      closed = true;
      tracker.close();
      dispatcher.close();
      gate.close();
      if (server) await closeServer(server);
    },
    createdCount: () => engine.createdCount(),
    settle: () => tracker.settle(),
    setTaskStatus(taskId, status, opts) {
      engine.forceStatus(taskId, status, opts?.sendCallback ?? true);
    },
    reset() {
      engine.reset();
      dispatcher.reset();
      received.length = 0;
      accountRequests.length = 0;
      callbacks.length = 0;
      // Assigning (not replacing) keeps references held by tests valid and releases hung requests.
      Object.assign(faults, defaultFaults());
    },
    forgetEnded(before) {
      const gone = engine.forgetEnded(before);
      dispatcher.forget(gone);
      // In place: tests may hold these arrays. Both are in time order.
      const dropBefore = <T extends { at: number }>(xs: T[]) => {
        const first = xs.findIndex((x) => x.at >= before);
        xs.splice(0, first < 0 ? xs.length : first);
      };
      dropBefore(received);
      dropBefore(accountRequests);
      dropBefore(callbacks);
      return gone.length;
    },
  };
  return sim;
}

function assertValidOptions(options: SimulatorOptions, models: string[], videoModels: string[]): void {
  if (models.length === 0) throw new Error('simulator: models must not be empty');
  if (videoModels.length === 0) throw new Error('simulator: videoModels must not be empty');
  if (options.accessKey && !options.secretKey) throw new Error('simulator: accessKey needs secretKey');
  for (const key of ['processingAfterMs', 'finishAfterMs'] as const) {
    const value = options[key];
    if (value !== undefined && !(value >= 0)) throw new Error(`simulator: ${key} must be >= 0`);
  }
}

export function listenOn(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

// A wildcard bind address is not something a client can connect to.
export function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}
