import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { EXIT_WITH_PARENT } from '../../scripts/lib/local-services';
import { eventually } from '../helpers/invariants';

// A driver (jest, the benchmark, the soak) killed with SIGKILL cannot kill its children: the ones it
// starts with EXIT_WITH_PARENT end by themselves, and only once their parent is gone.

/** Whether a process runs: one that has ended is gone, or a zombie that nobody has reaped yet. */
function running(pid: number): boolean {
  try {
    const state = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** A process standing for a driver: it starts a long-lived child with `childArgs` and prints the child's pid. */
async function driverWithChild(childArgs: string[]): Promise<{ driver: ChildProcess; child: number }> {
  const script = `
    const { spawn } = require('node:child_process');
    const child = spawn(process.execPath, ${JSON.stringify(childArgs)}, { stdio: 'ignore' });
    console.log(child.pid);
    setInterval(() => {}, 60_000);
  `;
  const driver = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve) => driver.stdout!.once('data', (d) => resolve(String(d))));
  return { driver, child: Number(line.trim()) };
}

// Whatever the test's outcome, neither process outlives it.
const started: number[] = [];
afterAll(() => {
  for (const pid of started) if (running(pid)) process.kill(pid, 'SIGKILL');
});

test('a child started with EXIT_WITH_PARENT runs while its parent does and ends once the parent is killed with SIGKILL', async () => {
  const { driver, child } = await driverWithChild([...EXIT_WITH_PARENT, '-e', 'setInterval(() => {}, 60_000)']);
  started.push(driver.pid!, child);
  // Past two of its checks of the parent, it still runs.
  await new Promise((r) => setTimeout(r, 2500));
  expect(running(child)).toBe(true);

  driver.kill('SIGKILL');
  await eventually('the orphaned child ends', async () => !running(child), 20_000);
  expect(running(child)).toBe(false);
});
