import type { Db } from '../../db/client';
import { invalidParameter } from '../../errors';
import type { SlotPool } from '../../kinds/kind';
import { redactCredentials } from '../../lib/redact-url';
import { slotsInUse } from '../../tasks/task-slots';

/**
 * The operator view's only door to upstream accounts: listing them and taking one out of or back
 * into rotation. Today the deployment has one account, the environment's credential (KLING_*);
 * an account pool replaces the bodies of these two functions, not their callers.
 */

export interface AccountView {
  id: string;
  name: string;
  enabled: boolean;
  /** `ok`, or why the account is not used (e.g. `arrears`). */
  health: string;
  /** Slots in use and the limit, per pool. */
  pools: Record<SlotPool, { in_use: number; limit: number }>;
  /** Remaining balance when the upstream reports one; null: unknown. */
  balance: number | null;
}

export interface AccountsDeps {
  db: Db;
  /** UPSTREAM_CONCURRENCY_IMAGE / _VIDEO. */
  poolLimits: Readonly<Record<SlotPool, number>>;
  /** Where the environment's credential points (credentials in it are never shown). */
  upstreamBaseUrl?: string;
}

const ENVIRONMENT_ACCOUNT = 'environment';

export async function listAccounts(deps: AccountsDeps): Promise<AccountView[]> {
  const [image, video] = await Promise.all([slotsInUse(deps.db, 'image'), slotsInUse(deps.db, 'video')]);
  const where = deps.upstreamBaseUrl ? ` (${redactCredentials(deps.upstreamBaseUrl)})` : '';
  return [
    {
      id: ENVIRONMENT_ACCOUNT,
      name: `environment credential${where}`,
      enabled: true,
      health: 'ok',
      pools: { image: { in_use: image, limit: deps.poolLimits.image }, video: { in_use: video, limit: deps.poolLimits.video } },
      balance: null,
    },
  ];
}

/** Takes an account out of (false) or back into (true) rotation. */
export async function setAccountEnabled(_deps: AccountsDeps, id: string, enabled: boolean): Promise<AccountView> {
  throw invalidParameter(
    id === ENVIRONMENT_ACCOUNT
      ? `account: the environment's credential (KLING_*) is the only account and cannot be ${enabled ? 'enabled' : 'disabled'} here; change the configuration instead`
      : `account: no account ${id.slice(0, 100)}`,
  );
}
