import type { SimulatorFaults } from './types';

export function defaultFaults(): SimulatorFaults {
  return {
    createErrors: [],
    queryErrors: [],
    outcome: 'succeed',
    failRate: 0,
    failMessage: 'Content safety check failed',
    loseCallbacks: false,
    duplicateCallbacks: false,
    reorderCallbacks: false,
    hang: false,
    concurrencyLimit: Infinity,
    createLatencyMs: 0,
  };
}

/**
 * The mutable faults object handed to tests. `hang` is an accessor so that a plain
 * `sim.faults.hang = false` releases the requests being held.
 */
export function createFaults(onHangReleased: () => void): SimulatorFaults {
  const { hang: _initialHang, ...plain } = defaultFaults();
  let hang = false;
  const faults = { ...plain } as SimulatorFaults;
  Object.defineProperty(faults, 'hang', {
    enumerable: true,
    get: () => hang,
    set: (value: boolean) => {
      const wasHanging = hang;
      hang = Boolean(value);
      if (wasHanging && !hang) onHangReleased();
    },
  });
  return faults;
}
