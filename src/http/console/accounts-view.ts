import type { Db } from '../../db/client';
import { invalidParameter } from '../../errors';
import { listAccounts as listPoolAccounts, setAccountEnabled as setPoolAccountEnabled } from '../../accounts/account-repository';
import { KINDS } from '../../kinds/registry';

/**
 * The operator view's door to the upstream account pool (src/accounts/): listing the accounts and
 * taking one out of or back into rotation, as `accounts list`, `disable` and `enable` do.
 */

const POOLS = [...new Set(KINDS.map((k) => k.pool))];

export interface AccountView {
  id: string;
  name: string;
  enabled: boolean;
  /** `ok`, or why the account is not used (e.g. `arrears`, `disabled`). */
  health: string;
  /** Slots in use and the usable limit, per pool. */
  pools: Record<string, { in_use: number; limit: number }>;
  /** Units left in the account's packs, summed, when the upstream reported them; null: unknown. */
  balance: number | null;
}

export interface AccountsDeps {
  db: Db;
}

export async function listAccounts(deps: AccountsDeps): Promise<AccountView[]> {
  return (await listPoolAccounts(deps.db)).map((a) => {
    const remaining = a.balance?.map((p) => p.remaining).filter((n): n is number => n !== null) ?? [];
    return {
      id: a.id,
      name: a.name,
      enabled: a.enabled,
      health: a.health,
      pools: Object.fromEntries(POOLS.map((p) => [p, { in_use: a.slots[p]?.in_use ?? 0, limit: a.slots[p]?.usable ?? 0 }])),
      balance: remaining.length ? remaining.reduce((sum, n) => sum + n, 0) : null,
    };
  });
}

/** Takes an account out of (false) or back into (true) rotation; tasks already there are still tracked through it. */
export async function setAccountEnabled(deps: AccountsDeps, id: string, enabled: boolean): Promise<AccountView> {
  if (!(await setPoolAccountEnabled(deps.db, id, enabled))) throw invalidParameter(`account: no account ${id.slice(0, 100)}`);
  const account = (await listAccounts(deps)).find((a) => a.id === id);
  if (!account) throw invalidParameter(`account: no account ${id.slice(0, 100)}`);
  return account;
}
