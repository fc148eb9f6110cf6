import { canTransition, fromUpstreamStatus, isTerminal, toClientStatus } from '../../src/tasks/task-state';

describe('task status machine', () => {
  it('moves only forward: queued -> submitted -> processing -> succeed | failed', () => {
    expect(canTransition('queued', 'submitted')).toBe(true);
    expect(canTransition('queued', 'processing')).toBe(true);
    expect(canTransition('submitted', 'processing')).toBe(true);
    expect(canTransition('processing', 'succeed')).toBe(true);
    expect(canTransition('processing', 'failed')).toBe(true);
    expect(canTransition('queued', 'failed')).toBe(true);
    expect(canTransition('processing', 'submitted')).toBe(false);
    expect(canTransition('submitted', 'submitted')).toBe(false);
    expect(canTransition('submitted', 'queued')).toBe(false);
  });

  it('keeps terminal states final', () => {
    for (const end of ['succeed', 'failed'] as const) {
      expect(isTerminal(end)).toBe(true);
      for (const to of ['queued', 'submitted', 'processing', 'succeed', 'failed'] as const) expect(canTransition(end, to)).toBe(false);
    }
  });

  it("shows clients only Kling's four values", () => {
    expect(toClientStatus('queued')).toBe('submitted');
    expect(['submitted', 'processing', 'succeed', 'failed'].map((s) => toClientStatus(s as never))).toEqual([
      'submitted',
      'processing',
      'succeed',
      'failed',
    ]);
  });

  it('maps only documented upstream values, never guessing', () => {
    expect(fromUpstreamStatus('succeed')).toBe('succeed');
    expect(fromUpstreamStatus('succeeded')).toBeNull();
    expect(fromUpstreamStatus('toString')).toBeNull();
    expect(fromUpstreamStatus('queued')).toBeNull();
  });
});
