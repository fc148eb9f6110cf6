import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eventually } from '../helpers/invariants';

/**
 * No line of the service's logger is lost or reordered when its process exits, crashes, is killed
 * or goes idle: each test runs a real process that logs through it and reads its stdout.
 */
const LOGGER = path.resolve(__dirname, '..', '..', 'src', 'logger.ts');
let dir: string;
beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kt-logger-'))));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs `body` (TypeScript, with `log` the service's logger at info) as a process of its own. */
function run(name: string, body: string) {
  const file = path.join(dir, `${name}.ts`);
  fs.writeFileSync(file, `import { createLogger } from ${JSON.stringify(LOGGER)};\nconst log = createLogger('info');\n${body}\n`);
  const child = spawn(process.execPath, ['--import', 'tsx', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  // 'close', not 'exit': it comes once stdout has been read to its end.
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  const lines = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; n?: number });
  return { child, exited, lines };
}

describe('the log output', () => {
  it('writes the lines logged just before the process exits', async () => {
    const p = run('exit', "log.info({ n: 1 }, 'first'); log.warn('last words'); process.exit(3);");
    expect(await p.exited).toBe(3);
    expect(p.lines().map((l) => l.msg)).toEqual(['first', 'last words']);
  });

  it('writes the lines logged before an uncaught exception ends the process', async () => {
    const p = run('crash', "log.error('about to fail'); setImmediate(() => { throw new Error('boom'); });");
    expect(await p.exited).toBe(1);
    expect(p.lines().map((l) => l.msg)).toEqual(['about to fail']);
  });

  it('writes the lines of a process that goes on without logging more', async () => {
    const p = run('idle', "log.info('alone'); setInterval(() => undefined, 1000);");
    try {
      await eventually('the line of an idle process', async () => p.lines().length > 0, 5_000);
      expect(p.child.exitCode).toBeNull();
      expect(p.lines().map((l) => l.msg)).toEqual(['alone']);
    } finally {
      p.child.kill('SIGKILL');
      await p.exited;
    }
  });

  it('has written every line logged before the process is killed outright', async () => {
    const p = run('killed', "log.info('one'); log.info('two'); process.kill(process.pid, 'SIGKILL');");
    await p.exited;
    expect(p.child.signalCode).toBe('SIGKILL');
    expect(p.lines().map((l) => l.msg)).toEqual(['one', 'two']);
  });

  it('writes every line of a burst, whole and in order', async () => {
    const p = run('burst', "for (let n = 0; n < 5000; n++) log.info({ n, pad: 'x'.repeat(n % 300) }, 'line');");
    expect(await p.exited).toBe(0);
    expect(p.lines().map((l) => l.n)).toEqual(Array.from({ length: 5000 }, (_, n) => n));
  });
});
