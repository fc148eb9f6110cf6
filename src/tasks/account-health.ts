import {
  accountSlotsInUse,
  capSlots,
  countFailure,
  disableForAuth,
  markPoolHealthy,
  OUT_OF_ROTATION,
  refuseModel,
  takePoolOut,
  troubledAccounts,
} from '../accounts/account-repository';
import type { Db } from '../db/client';
import type { UpstreamError } from '../kling/upstream-errors';

/**
 * What an upstream answer to a create says about the ACCOUNT (not the task), as Kling's codes mean
 * it. Every verdict but `failure` is a refusal: an answer was received and nothing was created, so
 * the task may go to another account. `failure` (5000-series, no answer) may hide a created task:
 * the task stays where it is and is looked up there first.
 */
export type AccountVerdict =
  | { kind: 'pool_out'; code: number } // 1100/1101/1102/1304: this account's pool is out of rotation
  | { kind: 'model_refused' } // 1103: the model is not allowed on this account
  | { kind: 'auth' } // 1000-1002, or 1003/1004 again after a fresh signature: the credential is refused
  | { kind: 'full' } // 1303: the account holds fewer slots than configured
  | { kind: 'failure' }; // counts toward the account's circuit breaker

export function accountVerdict(err: UpstreamError, resigned: boolean): AccountVerdict | null {
  const code = err.code;
  if (code !== undefined && OUT_OF_ROTATION[code]) return { kind: 'pool_out', code };
  if (code === 1103) return { kind: 'model_refused' };
  if (code === 1000 || code === 1001 || code === 1002 || ((code === 1003 || code === 1004) && resigned)) return { kind: 'auth' };
  if (code === undefined && err.httpStatus === 401) return { kind: 'auth' };
  if (code === 1303) return { kind: 'full' };
  if (err.kind === 'server' || err.kind === 'timeout' || err.kind === 'network') return { kind: 'failure' };
  return null;
}

export interface AccountHealthSettings {
  /** ACCOUNT_PROBE_INTERVAL_MS: a pool out of rotation is tried again after this; also how long an open breaker stays open. */
  probeMs: number;
  /** Failures in a row that open an account's breaker. */
  breakerThreshold: number;
}

/** How long the list of accounts with trouble is trusted before it is read again. */
const TROUBLE_TTL_MS = 1_000;

/**
 * Writes verdicts to the account's row (where every process's claim reads them), and writes a
 * success only for accounts that had trouble, so a healthy pool costs no statement per submission.
 */
export function createAccountHealth(db: Db, settings: AccountHealthSettings) {
  let troubled: { ids: Set<string>; at: number } | undefined;
  const hasTrouble = async (id: string) => {
    if (!troubled || Date.now() - troubled.at > TROUBLE_TTL_MS) troubled = { ids: await troubledAccounts(db), at: Date.now() };
    return troubled.ids.has(id);
  };
  return {
    /** Records a verdict; for `full`, `capMs` is how long the lowered limit holds. */
    async record(verdict: AccountVerdict, account: string, task: { pool: string; modelName: string; slotsHeld: number }, capMs: number) {
      if (verdict.kind === 'pool_out') await takePoolOut(db, account, task.pool, verdict.code, settings.probeMs);
      else if (verdict.kind === 'model_refused') await refuseModel(db, account, task.modelName);
      else if (verdict.kind === 'auth') await disableForAuth(db, account);
      else if (verdict.kind === 'full') {
        // The upstream is full with what the other tasks hold there: that is its real size for now.
        const others = (await accountSlotsInUse(db, account, task.pool)) - task.slotsHeld;
        await capSlots(db, account, task.pool, Math.max(others, 0), capMs);
      } else await countFailure(db, account, settings.breakerThreshold, settings.probeMs);
      troubled?.ids.add(account);
    },
    /** The upstream accepted a create: the pool is back in rotation (a probe that succeeded) and the breaker closes. */
    async succeeded(account: string, pool: string) {
      if (await hasTrouble(account)) await markPoolHealthy(db, account, pool);
    },
  };
}

export type AccountHealth = ReturnType<typeof createAccountHealth>;
