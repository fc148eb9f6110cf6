import type { SimulatorFaults } from './types';

export function defaultFaults(): SimulatorFaults {
  return {
    createErrors: [],
    queryErrors: [],
    createOutage: undefined,
    outcome: 'succeed',
    failRate: 0,
    failMessage: 'Content safety check failed',
    loseCallbacks: false,
    duplicateCallbacks: false,
    reorderCallbacks: false,
    hang: false,
    hangAfterCreate: false,
    concurrencyLimit: Infinity,
    videoConcurrencyLimit: Infinity,
    createLatencyMs: 0,
    packsExhausted: false,
    packUnits: 1_000_000,
  };
}

/**
 * The mutable faults object handed to tests. `hang` and `hangAfterCreate` are accessors so that a
 * plain `sim.faults.hang = false` releases the requests being held.
 */
export function createFaults(onHangReleased: () => void): SimulatorFaults {
  const { hang: _hang, hangAfterCreate: _hangAfterCreate, ...plain } = defaultFaults();
  const faults = { ...plain } as SimulatorFaults;
  for (const name of ['hang', 'hangAfterCreate'] as const) {
    let on = false;
    Object.defineProperty(faults, name, {
      enumerable: true,
      get: () => on,
      set: (value: boolean) => {
        const was = on;
        on = Boolean(value);
        if (was && !on) onHangReleased();
      },
    });
  }
  return faults;
}
