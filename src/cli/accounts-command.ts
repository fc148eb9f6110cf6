import { parseArgs } from 'node:util';
import {
  accountNameTaken,
  addAccount,
  listAccounts,
  removeAccount,
  resolveAccountId,
  setAccountEnabled,
  updateAccount,
  type AccountView,
} from '../accounts/account-repository';
import type { Db } from '../db/client';
import type { SlotPool } from '../kinds/kind';
import { KINDS } from '../kinds/registry';
import type { SecretBox } from '../tenants/secret-box';

/** Every pool of the registry's kinds has its own `--<pool>-slots` option. */
const POOLS = [...new Set(KINDS.map((k) => k.pool))];
const DEFAULT_SLOTS = 10;

export const ACCOUNTS_USAGE = `
  npm run cli -- accounts add --name NAME --base-url URL (--api-key K | --access-key A --secret-key S)
                 [${POOLS.map((p) => `--${p}-slots N`).join('] [')}] [--weight W]   add an upstream Kling account to the pool
  npm run cli -- accounts list [--json]                 accounts with health, slots in use and limits (no secrets)
  npm run cli -- accounts disable ID | enable ID        take an account out of / back into rotation (ID or name)
  npm run cli -- accounts set ID [--image-slots N ...] [--weight W]   change its slots or weight
  npm run cli -- accounts remove ID                     remove it (refused while it holds tasks in flight)`;

type Say = (problem: string) => number;

/** `accounts ...`: prints results as JSON on stdout, problems on stderr; returns the exit code. */
export async function accountsCommand(db: Db, secrets: SecretBox, argv: string[], usage: Say): Promise<number> {
  const options = {
    name: { type: 'string' },
    'base-url': { type: 'string' },
    'api-key': { type: 'string' },
    'access-key': { type: 'string' },
    'secret-key': { type: 'string' },
    weight: { type: 'string' },
    json: { type: 'boolean' },
    ...Object.fromEntries(POOLS.map((p) => [`${p}-slots`, { type: 'string' }])),
  } as const;
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options });
  } catch (err) {
    return usage((err as Error).message);
  }
  const { positionals, values } = parsed;
  const v = values as Record<string, string | boolean | undefined>;
  const [command, arg] = positionals;
  const slots = (required: boolean): Partial<Record<SlotPool, number>> | string => {
    const out: Partial<Record<SlotPool, number>> = {};
    for (const pool of POOLS) {
      const raw = v[`${pool}-slots`] as string | undefined;
      if (raw === undefined) {
        if (required) out[pool] = DEFAULT_SLOTS;
        continue;
      }
      if (!/^\d{1,6}$/.test(raw)) return `--${pool}-slots must be a whole number (0 or more)`;
      out[pool] = Number(raw);
    }
    return out;
  };
  const weight = (): number | undefined | string => {
    const raw = v.weight as string | undefined;
    if (raw === undefined) return undefined;
    return /^\d{1,4}$/.test(raw) && Number(raw) >= 1 ? Number(raw) : '--weight must be a whole number from 1 to 9999';
  };
  const target = async () => (arg ? resolveAccountId(db, arg) : null);

  if (command === 'add') {
    const name = (v.name as string | undefined)?.trim();
    if (!name || name.length > 200) return usage('--name is required (1 to 200 characters)');
    const baseUrl = (v['base-url'] as string | undefined)?.replace(/\/+$/, '');
    if (!baseUrl || !/^https?:\/\/[^\s]+$/i.test(baseUrl) || !URL.canParse(baseUrl)) return usage('--base-url must be an http(s) URL');
    if (new URL(baseUrl).username || new URL(baseUrl).password)
      return usage('--base-url must not carry credentials: use --api-key or --access-key/--secret-key');
    const apiKey = v['api-key'] as string | undefined;
    const accessKey = v['access-key'] as string | undefined;
    const secretKey = v['secret-key'] as string | undefined;
    if (apiKey ? accessKey || secretKey : !(accessKey && secretKey))
      return usage('give either --api-key, or --access-key with --secret-key');
    const limits = slots(true);
    if (typeof limits === 'string') return usage(limits);
    const w = weight();
    if (typeof w === 'string') return usage(w);
    if (await accountNameTaken(db, name)) return usage(`an account named ${name} exists already`);
    const added = await addAccount(db, secrets, {
      name,
      baseUrl,
      apiKey,
      accessKey,
      secretKey,
      slotLimits: limits as Record<SlotPool, number>,
      weight: w ?? 1,
    });
    console.log(JSON.stringify(added));
    return 0;
  }
  if (command === 'list') {
    const accounts = await listAccounts(db);
    console.log(v.json ? JSON.stringify(accounts) : accounts.map(describe).join('\n'));
    return 0;
  }
  if (command === 'enable' || command === 'disable') {
    const id = await target();
    if (!id) return usage(`${command} needs the id or name of an existing account`);
    await setAccountEnabled(db, id, command === 'enable');
    console.log(JSON.stringify({ id, enabled: command === 'enable' }));
    return 0;
  }
  if (command === 'set') {
    const id = await target();
    if (!id) return usage('set needs the id or name of an existing account');
    const limits = slots(false);
    if (typeof limits === 'string') return usage(limits);
    const w = weight();
    if (typeof w === 'string') return usage(w);
    const outcome = await updateAccount(db, id, { slotLimits: limits, weight: w });
    if (outcome === 'environment') return usage('the env account takes its slots from UPSTREAM_CONCURRENCY_*: change them there');
    console.log(JSON.stringify((await listAccounts(db)).find((a) => a.id === id)));
    return 0;
  }
  if (command === 'remove') {
    const id = await target();
    if (!id) return usage('remove needs the id or name of an existing account');
    const outcome = await removeAccount(db, id);
    if (outcome === 'in_flight') {
      console.error(`account ${arg} holds tasks in flight: disable it, and remove it once they have ended`);
      return 1;
    }
    console.log(JSON.stringify({ id, removed: outcome === 'removed' }));
    return outcome === 'removed' ? 0 : 1;
  }
  return usage(`unknown accounts command: ${command ?? '(none)'}`);
}

function describe(a: AccountView): string {
  const slots = Object.entries(a.slots)
    .map(([pool, s]) => `${pool} ${s.in_use}/${s.usable}${s.usable !== s.limit ? ` (of ${s.limit})` : ''}`)
    .join(', ');
  return `${a.id}  ${a.name}  ${a.enabled ? 'enabled' : 'disabled'}  health=${a.health}  weight=${a.weight}  ${slots}  ${a.base_url}`;
}
