import type { ChildProcess } from 'node:child_process';

/**
 * What the soak must undo however it ends (done, failed, Ctrl-C): every child process it has
 * running, and the private Postgres cluster with its directory. Synchronous, for exit and signal
 * handlers.
 */
const live = new Set<ChildProcess>();
const undo = new Set<() => void>();

export function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** Registers `fn` to run at clean-up; returns its removal. */
export function atCleanup(fn: () => void): () => void {
  undo.add(fn);
  return () => undo.delete(fn);
}

export function cleanUpNow(): void {
  for (const child of live) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  live.clear();
  for (const fn of [...undo].reverse()) {
    try {
      fn();
    } catch {
      // Clean up the rest regardless.
    }
  }
  undo.clear();
}
