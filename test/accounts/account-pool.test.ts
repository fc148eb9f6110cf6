import request from 'supertest';
import { addAccount } from '../../src/accounts/account-repository';
import { createKlingSimulator, type KlingSimulator } from '../../src/simulator/kling-simulator';
import { slotsInUse } from '../../src/tasks/task-slots';
import { bearer } from '../helpers/fixtures';
import { startHarness, type Harness } from '../helpers/harness';
import { eventually, slotsHeldByTasks } from '../helpers/invariants';
import { runCli, startSimulatorProcess, workerProcesses } from '../helpers/processes';

/**
 * The upstream account pool with real processes: the API runs in the test process, the workers are
 * `src/main.ts` processes with no KLING_* upstream of their own, and each account is a simulator of
 * its own (own key, own slot limit, own failure modes), as two independent Kling accounts would be.
 */
jest.setTimeout(120_000);

const ADMIN_TOKEN = 'admin-token-of-the-account-tests';

interface SimAccount {
  sim: KlingSimulator;
  id: string;
  name: string;
}

let h: Harness;
const accounts: SimAccount[] = [];
const workers = workerProcesses(() => workerEnv());

/** The harness's environment without its upstream: the workers know only the pool's accounts. */
function workerEnv(): Record<string, string> {
  const { KLING_BASE_URL: _url, KLING_API_KEY: _key, ...env } = h.env;
  return { ...env, UPSTREAM_POLL_AFTER_MS: '300', RECONCILE_INTERVAL_MS: '200', ACCOUNT_PROBE_INTERVAL_MS: probeMs };
}

/** ACCOUNT_PROBE_INTERVAL_MS of the workers a test starts. */
let probeMs = '60000';

/** A simulator that is an account of the pool, with `slots` image slots both there and in the account. */
async function addSimAccount(name: string, slots: number, weight = 1, keyGiven?: string): Promise<SimAccount> {
  const key = `key-of-${name}`;
  const sim = createKlingSimulator({ apiKey: key, processingAfterMs: 150, finishAfterMs: 250 });
  const baseUrl = await sim.listen();
  // The simulator refuses past its own limit (1303): any overshoot of the account's limit would show.
  sim.faults.concurrencyLimit = slots;
  const added = await addAccount(h.api.db, h.api.secrets, {
    name,
    baseUrl,
    apiKey: keyGiven ?? key,
    slotLimits: { image: slots, video: 2 },
    weight,
  });
  const account = { sim, id: added.id, name };
  accounts.push(account);
  return account;
}

/** Creates `count` image tasks (no webhooks) for a new tenant and returns their ids. */
async function createTasks(count: number): Promise<string[]> {
  const key = (await h.newTenant()).api_key;
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await request(h.url)
      .post('/v1/images/generations')
      .set(bearer(key))
      .send({ prompt: `p${i}` });
    expect(res.status).toBe(200);
    ids.push(res.body.data.task_id);
  }
  return ids;
}

const posts = (a: SimAccount) => a.sim.received.filter((r) => r.method === 'POST');
const refusals = (a: SimAccount) => posts(a).length - a.sim.createdCount();

/** `npm run cli -- ARGS` as an operator runs it, against the test's database. */
const cli = (args: string[]) => runCli(args, { DATABASE_URL: h.env.DATABASE_URL, SECRETS_KEY: h.env.SECRETS_KEY });

/** Every task ended `succeed`, each with exactly one upstream task, on the account recorded on it; no slot held. */
async function expectAllSucceededOnTheirAccounts(ids: string[]): Promise<void> {
  const db = h.api.db;
  await eventually(
    'every task ended',
    async () => (await db.task.count({ where: { id: { in: ids }, state: { in: ['succeed', 'failed'] } } })) === ids.length,
  );
  for (const a of accounts) await a.sim.settle();
  for (const t of await db.task.findMany({ where: { id: { in: ids } } })) {
    const where = accounts.flatMap((a) =>
      [...a.sim.tasks.values()].filter((u) => u.external_task_id === t.id).map((u) => ({ account: a.id, u })),
    );
    expect({ task: t.id, state: t.state, upstreamTasks: where.length }).toEqual({ task: t.id, state: 'succeed', upstreamTasks: 1 });
    expect({ task: t.id, account: t.accountId, upstreamTaskId: t.upstreamTaskId }).toEqual({
      task: t.id,
      account: where[0].account,
      upstreamTaskId: where[0].u.task_id,
    });
  }
  expect({ counter: await slotsInUse(db), tasks: await slotsHeldByTasks(db) }).toEqual({ counter: 0, tasks: 0 });
}

beforeEach(async () => {
  probeMs = '60000';
  h = await startHarness({ workers: false, env: { WORKER_LOCK_MS: '2000', ADMIN_TOKEN } });
});
afterEach(async () => {
  await workers.killAll();
  await h.close();
  for (const a of accounts.splice(0)) await a.sim.close();
});

describe('placement on several accounts', () => {
  it('spreads tasks within each account limit, and polls each task only on its own account', async () => {
    const a = await addSimAccount('alpha', 2);
    const b = await addSimAccount('beta', 3);
    // Callbacks lost: every task is tracked by polling, which must ask the account that has it.
    for (const x of [a, b]) x.sim.faults.loseCallbacks = true;
    await workers.start();
    const ids = await createTasks(12);
    await expectAllSucceededOnTheirAccounts(ids);
    expect(refusals(a) + refusals(b)).toBe(0);
    expect(a.sim.createdCount()).toBeGreaterThan(0);
    expect(b.sim.createdCount()).toBeGreaterThan(0);
    for (const x of [a, b]) {
      const known = new Set([...x.sim.tasks.values()].flatMap((u) => [u.task_id, u.external_task_id]));
      // A task is asked for by an id in the path (its upstream id or its external_task_id), or by
      // its external_task_id in the query (a lookup's second form), which is then the id to check.
      const asked = x.sim.received
        .filter((r) => r.method === 'GET' && r.path.startsWith('/v1/'))
        .map((r) => (typeof r.query.external_task_id === 'string' ? r.query.external_task_id : r.path.split('/').pop()!));
      expect(asked.length).toBeGreaterThan(0);
      expect(asked.filter((id) => !known.has(id))).toEqual([]);
    }
  });

  it('refuses at create a task whose n no enabled account can hold, naming n', async () => {
    await addSimAccount('alpha', 2);
    await addSimAccount('beta', 3);
    await workers.start();
    const key = (await h.newTenant()).api_key;
    const create = (n: number) => request(h.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'x', n });
    const refused = await create(4);
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: 1201, message: expect.stringMatching(/^n: .*3/) });
    expect(await h.api.db.task.count()).toBe(0);
    const accepted = await create(3);
    expect(accepted.status).toBe(200);
    const t = await h.waitForTask(accepted.body.data.task_id, (x) => x.state === 'succeed');
    expect(t.accountId).toBe(accounts[1].id);
  });
});

describe('an account running out mid-run', () => {
  it('loses and fails no task, sends it only a few submissions after its first refusal, and lists its health', async () => {
    const a = await addSimAccount('alpha', 3);
    const b = await addSimAccount('beta', 3);
    await workers.start();
    const ids = await createTasks(24);
    await eventually('both accounts busy', async () => a.sim.createdCount() >= 1 && b.sim.createdCount() >= 1);
    a.sim.faults.packsExhausted = true;
    const createdBefore = a.sim.createdCount();
    await expectAllSucceededOnTheirAccounts(ids);
    expect(a.sim.createdCount()).toBe(createdBefore);
    // Submissions already placed on it when it first refused may still arrive; nothing after that.
    expect(refusals(a)).toBeGreaterThan(0);
    expect(refusals(a)).toBeLessThanOrEqual(3);
    const list = await cli(['accounts', 'list', '--json']);
    expect(list.code).toBe(0);
    const shown = JSON.parse(list.stdout) as { id: string; health: string; enabled: boolean }[];
    expect(shown.find((x) => x.id === a.id)).toMatchObject({ enabled: true, health: 'pack_exhausted' });
    expect(shown.find((x) => x.id === b.id)).toMatchObject({ enabled: true, health: 'ok' });
  });
});

describe('an account coming back', () => {
  it('probes a pool out of rotation after ACCOUNT_PROBE_INTERVAL_MS and puts it back by itself once accepted', async () => {
    probeMs = '1500';
    const a = await addSimAccount('alpha', 3);
    const b = await addSimAccount('beta', 3);
    a.sim.faults.packsExhausted = true;
    await workers.start();
    const first = await createTasks(6);
    await expectAllSucceededOnTheirAccounts(first);
    expect(a.sim.createdCount()).toBe(0);
    expect(b.sim.createdCount()).toBe(6);
    // Topped up: the next probe is accepted and the account takes tasks again.
    a.sim.faults.packsExhausted = false;
    await eventually(
      'a task on the account again',
      async () => {
        await expectAllSucceededOnTheirAccounts(await createTasks(2));
        return a.sim.createdCount() > 0;
      },
      20_000,
    );
    const shown = JSON.parse((await cli(['accounts', 'list', '--json'])).stdout) as { id: string; health: string }[];
    expect(shown.find((x) => x.id === a.id)).toMatchObject({ health: 'ok' });
  });

  it('disables an account whose credential the upstream refuses, until an operator enables it', async () => {
    const a = await addSimAccount('alpha', 3, 1, 'a-revoked-key');
    const b = await addSimAccount('beta', 3);
    await workers.start();
    const ids = await createTasks(6);
    await expectAllSucceededOnTheirAccounts(ids);
    expect(a.sim.createdCount()).toBe(0);
    expect(b.sim.createdCount()).toBe(6);
    const shown = JSON.parse((await cli(['accounts', 'list', '--json'])).stdout) as { id: string; health: string; enabled: boolean }[];
    expect(shown.find((x) => x.id === a.id)).toMatchObject({ enabled: false, health: 'auth' });
  });
});

describe('a model refused by one account', () => {
  it('records the model as refused there (1103) and places its tasks on the other account', async () => {
    const a = await addSimAccount('alpha', 3);
    const b = await addSimAccount('beta', 3);
    a.sim.faults.createOutage = { http: 403, code: 1103, message: 'no permission for this model' };
    await workers.start();
    const ids = await createTasks(6);
    await expectAllSucceededOnTheirAccounts(ids);
    expect(b.sim.createdCount()).toBe(6);
    expect(refusals(a)).toBeGreaterThan(0);
    expect(refusals(a)).toBeLessThanOrEqual(3);
    const shown = JSON.parse((await cli(['accounts', 'list', '--json'])).stdout) as {
      id: string;
      refused_models: string[];
      health: string;
    }[];
    expect(shown.find((x) => x.id === a.id)).toMatchObject({ refused_models: ['kling-v3'], health: 'ok' });
  });
});

describe('accounts disable / enable', () => {
  it('sends nothing to a disabled account and uses it again once enabled', async () => {
    const a = await addSimAccount('alpha', 3);
    const b = await addSimAccount('beta', 3);
    await workers.start();
    expect((await cli(['accounts', 'disable', 'alpha'])).code).toBe(0);
    await eventually('a worker heartbeat', async () => (await request(h.url).get('/readyz')).status === 200, 20_000);
    // Ready while one account can take work; not once none can.
    expect((await cli(['accounts', 'disable', 'beta'])).code).toBe(0);
    const none = await request(h.url).get('/readyz');
    expect([none.status, none.body.data]).toEqual([503, { postgres: 'ok', redis: 'ok', workers: 'ok', accounts: 'down' }]);
    expect((await cli(['accounts', 'enable', 'beta'])).code).toBe(0);
    expect((await request(h.url).get('/readyz')).status).toBe(200);
    const first = await createTasks(6);
    await expectAllSucceededOnTheirAccounts(first);
    expect(posts(a)).toHaveLength(0);
    expect(b.sim.createdCount()).toBe(6);
    expect((await cli(['accounts', 'enable', a.id])).code).toBe(0);
    const second = await createTasks(6);
    await expectAllSucceededOnTheirAccounts(second);
    expect(a.sim.createdCount()).toBeGreaterThan(0);
  });
});

describe('a worker killed mid-submission with several accounts', () => {
  it('looks each task up on the account it was sent to, even one disabled since: one upstream task per task', async () => {
    const a = await addSimAccount('alpha', 4);
    const b = await addSimAccount('beta', 4);
    // The creates go through but their answers never come back to the worker that sent them, and
    // no callback tells of them either: only the retried submission can find them.
    for (const x of [a, b]) Object.assign(x.sim.faults, { hangAfterCreate: true, loseCallbacks: true });
    const ids = await createTasks(16);
    const first = await workers.start();
    await eventually('both accounts full of unanswered creates', async () => a.sim.createdCount() === 4 && b.sim.createdCount() === 4);
    expect(await first.kill('SIGKILL')).toBeNull();
    // Out of rotation now: its tasks are still tracked through it, and nothing new goes there.
    expect((await cli(['accounts', 'disable', 'alpha'])).code).toBe(0);
    for (const x of [a, b]) x.sim.faults.hangAfterCreate = false;
    await workers.start();
    await expectAllSucceededOnTheirAccounts(ids);
    expect(a.sim.createdCount()).toBe(4);
    expect(a.sim.createdCount() + b.sim.createdCount()).toBe(ids.length);
  });
});

describe('balance and metrics per account', () => {
  it("reads each account's remaining units once and shows them with slots and health in accounts list and /metrics", async () => {
    const a = await addSimAccount('alpha', 2);
    const b = await addSimAccount('beta', 3);
    b.sim.faults.packUnits = 500;
    await workers.start();
    await expectAllSucceededOnTheirAccounts(await createTasks(4));
    await eventually('both balances read', async () => {
      const shown = JSON.parse((await cli(['accounts', 'list', '--json'])).stdout) as { id: string; balance: unknown }[];
      return shown.filter((x) => x.id !== 'env' && x.balance !== null).length === 2;
    });
    const shown = JSON.parse((await cli(['accounts', 'list', '--json'])).stdout) as { id: string; balance: { remaining: number }[] }[];
    expect(shown.find((x) => x.id === b.id)!.balance[0].remaining).toBeLessThanOrEqual(500);
    // Once a minute at most: the workers asked each account once since they started.
    for (const x of [a, b]) expect(x.sim.accountRequests.filter((r) => r.path === '/account/costs')).toHaveLength(1);
    const text = (await request(h.url).get('/metrics').set(bearer(ADMIN_TOKEN))).text;
    expect(text).toMatch(/kt_account_slot_limit\{account="alpha",pool="image"\} 2/);
    expect(text).toMatch(/kt_account_slot_limit\{account="beta",pool="image"\} 3/);
    expect(text).toMatch(/kt_account_slots_in_use\{account="beta",pool="image"\} 0/);
    expect(text).toMatch(/kt_account_healthy\{account="alpha",pool="image",health="ok"\} 1/);
    expect(text).toMatch(/kt_account_remaining_units\{account="beta",pack="simulated pack"\} \d+/);
  });
});

describe('an account whose balance says its packs are used up', () => {
  it('is avoided before the upstream has to refuse a task', async () => {
    const a = await addSimAccount('alpha', 3);
    const b = await addSimAccount('beta', 3);
    a.sim.faults.packsExhausted = true;
    await workers.start();
    await eventually('both balances read', async () => {
      const shown = JSON.parse((await cli(['accounts', 'list', '--json'])).stdout) as { id: string; balance: unknown }[];
      return shown.filter((x) => x.id !== 'env' && x.balance !== null).length === 2;
    });
    const ids = await createTasks(8);
    await expectAllSucceededOnTheirAccounts(ids);
    expect(posts(a)).toHaveLength(0);
    expect(b.sim.createdCount()).toBe(ids.length);
    const shown = JSON.parse((await cli(['accounts', 'list', '--json'])).stdout) as { id: string; health: string }[];
    expect(shown.find((x) => x.id === a.id)).toMatchObject({ health: 'pack_exhausted' });
  });
});

describe('the accounts CLI', () => {
  it('adds an account without printing its secrets, and refuses to remove one holding tasks in flight', async () => {
    const added = await cli([
      'accounts',
      'add',
      '--name',
      'gamma',
      '--base-url',
      'http://127.0.0.1:9/kling',
      '--access-key',
      'AK1',
      '--secret-key',
      'SK-secret-1',
      '--image-slots',
      '4',
      '--weight',
      '2',
    ]);
    expect(added.code).toBe(0);
    expect(added.stdout + added.stderr).not.toMatch(/SK-secret-1|AK1/);
    const account = JSON.parse(added.stdout);
    expect(account).toMatchObject({
      name: 'gamma',
      enabled: true,
      health: 'ok',
      weight: 2,
      slots: { image: { limit: 4, in_use: 0 }, video: { limit: 10 } },
    });
    const stored = (await h.api.db.sql('SELECT access_key, secret_key FROM upstream_accounts WHERE id = $1', [account.id])).rows[0];
    expect(JSON.stringify(stored)).not.toMatch(/SK-secret-1|AK1/);
    const list = await cli(['accounts', 'list', '--json']);
    expect(list.stdout).not.toMatch(/SK-secret-1|AK1/);
    expect((await cli(['accounts', 'set', 'gamma', '--image-slots', '6'])).code).toBe(0);
    expect(
      JSON.parse((await cli(['accounts', 'list', '--json'])).stdout).find((x: { id: string }) => x.id === account.id).slots.image.limit,
    ).toBe(6);
    // A task in flight on it: its polls need the account.
    const key = (await h.newTenant()).api_key;
    const id = (await request(h.url).post('/v1/images/generations').set(bearer(key)).send({ prompt: 'x' })).body.data.task_id;
    await h.api.db.sql(`UPDATE tasks SET state = 'submitted', account_id = $2, slots_held = 1 WHERE id = $1`, [id, account.id]);
    const refused = await cli(['accounts', 'remove', 'gamma']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/in flight/);
    await h.api.db.sql(`UPDATE tasks SET state = 'succeed', slots_held = 0 WHERE id = $1`, [id]);
    expect((await cli(['accounts', 'remove', 'gamma'])).code).toBe(0);
    expect(await h.api.db.task.findUniqueOrThrow({ where: { id } })).toMatchObject({ accountId: null });
    const bad = await cli([
      'accounts',
      'add',
      '--name',
      'delta',
      '--base-url',
      'http://127.0.0.1:9',
      '--api-key',
      'k',
      '--access-key',
      'a',
    ]);
    expect(bad.code).toBe(2);
  });
});

/** `npm run simulator` with SIMULATOR_ACCOUNTS, as a process, its tasks finishing soon after they start. */
const startSimulator = (env: Record<string, string>) =>
  startSimulatorProcess({ SIMULATOR_PROCESSING_MS: '150', SIMULATOR_FINISH_MS: '250', ...env });

describe('several accounts in one simulator process (SIMULATOR_ACCOUNTS)', () => {
  let sim: Awaited<ReturnType<typeof startSimulator>> | undefined;
  afterEach(async () => void (await sim?.kill()));

  /** The upstream tasks an account of the simulator holds, read through its own API with its own key. */
  async function upstreamTasks(
    name: string,
  ): Promise<
    { task_id: string; task_status: string; task_info?: { external_task_id: string }; task_result?: { images: { url: string }[] } }[]
  > {
    const res = await request(`${sim!.url}/${name}`)
      .get('/v1/images/generations?pageNum=1&pageSize=500')
      .set(bearer(`key-${name}`));
    expect(res.status).toBe(200);
    return res.body.data;
  }

  it('serves each account under its own path with its own key, slots and faults, and the pool runs on them', async () => {
    sim = await startSimulator({ SIMULATOR_ACCOUNTS: 'alpha:key-alpha:2,beta:key-beta:3' });
    expect(sim.output()).toMatch(/account alpha: base URL http:\/\/\S+\/alpha, image slots 2/);
    // One account's key is refused by the other, as two real accounts would.
    const crossed = await request(`${sim.url}/beta`).get('/v1/images/generations').set(bearer('key-alpha'));
    expect({ status: crossed.status, code: crossed.body.code }).toEqual({ status: 401, code: 1002 });
    for (const name of ['alpha', 'beta']) {
      const added = await cli([
        'accounts',
        'add',
        '--name',
        name,
        '--base-url',
        `${sim.url}/${name}`,
        '--api-key',
        `key-${name}`,
        '--image-slots',
        name === 'alpha' ? '2' : '3',
      ]);
      expect(added.code).toBe(0);
    }
    const ids = Object.fromEntries((await h.api.db.upstreamAccount.findMany()).map((a) => [a.name, a.id]));
    await workers.start();
    const tasks = await createTasks(8);
    await eventually(
      'both accounts busy',
      async () => (await upstreamTasks('alpha')).length >= 1 && (await upstreamTasks('beta')).length >= 1,
    );
    // alpha's pack runs out mid-run; beta must take the rest. Eight more tasks than beta's three
    // slots: alpha is tried again, and refuses, however far the first ones have got.
    const faults = await request(`${sim.url}/alpha`).post('/sim/faults').set(bearer('key-alpha')).send({ packs_exhausted: true });
    expect(faults.body.data).toMatchObject({ packs_exhausted: true, image_slots: 2 });
    tasks.push(...(await createTasks(8)));
    await eventually(
      'every task ended',
      async () => (await h.api.db.task.count({ where: { id: { in: tasks }, state: { in: ['succeed', 'failed'] } } })) === tasks.length,
    );
    const held = { alpha: await upstreamTasks('alpha'), beta: await upstreamTasks('beta') };
    for (const t of await h.api.db.task.findMany({ where: { id: { in: tasks } } })) {
      const where = (['alpha', 'beta'] as const).flatMap((name) =>
        held[name].filter((u) => u.task_info?.external_task_id === t.id).map((u) => ({ account: ids[name], upstreamTaskId: u.task_id })),
      );
      expect({ task: t.id, state: t.state, where }).toEqual({
        task: t.id,
        state: 'succeed',
        where: [{ account: t.accountId, upstreamTaskId: t.upstreamTaskId }],
      });
    }
    // Result files are served under the account's path too.
    const file = held.beta.find((u) => u.task_result)!.task_result!.images[0].url;
    expect(file.startsWith(`${sim.url}/beta/`)).toBe(true);
    const png = await request(file).get('');
    expect({ status: png.status, type: png.headers['content-type'] }).toEqual({ status: 200, type: 'image/png' });
    const shown = JSON.parse((await cli(['accounts', 'list', '--json'])).stdout) as { name: string; health: string }[];
    expect(shown.find((x) => x.name === 'alpha')).toMatchObject({ health: 'pack_exhausted' });
    expect(shown.find((x) => x.name === 'beta')).toMatchObject({ health: 'ok' });
    expect({ counter: await slotsInUse(h.api.db), tasks: await slotsHeldByTasks(h.api.db) }).toEqual({ counter: 0, tasks: 0 });
  });

  it('refuses a malformed SIMULATOR_ACCOUNTS with a message that shows the form', async () => {
    await expect(startSimulator({ SIMULATOR_ACCOUNTS: 'alpha:key-alpha:0' })).rejects.toThrow(/name:key\[:image_slots\[:video_slots\]\]/);
  });
});
