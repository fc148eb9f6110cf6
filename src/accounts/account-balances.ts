import type { Db } from '../db/client';
import type { Logger } from '../logger';
import type { AccountClients } from './account-clients';
import { accountIds, claimBalanceRead, recordBalance } from './account-repository';

/** Kling asks for QPS <= 1 on its account endpoint and its figures lag by hours: once a minute per account is plenty. */
export const BALANCE_EVERY_MS = 60_000;
/** How often a worker looks for an account whose balance is due. */
const CHECK_EVERY_MS = 10_000;

/**
 * Reads each account's remaining units (`GET /account/costs`) at most once a minute across the
 * deployment: a worker takes the right to read with a conditional write on the account's row, so
 * several workers never ask twice. An account whose packs are all used up or expired then has its
 * pools taken out of rotation before the upstream has to say so (1102), probed like any pool out. A
 * failed read changes nothing.
 */
export function startBalanceReads(deps: { db: Db; clients: AccountClients; log: Logger; probeIntervalMs: number }): { stop(): void } {
  let running = false;
  const round = async () => {
    if (running) return;
    running = true;
    try {
      for (const id of await accountIds(deps.db)) {
        if (!(await claimBalanceRead(deps.db, id, BALANCE_EVERY_MS))) continue;
        try {
          const client = await deps.clients.clientFor(id);
          await recordBalance(deps.db, id, await client.resourcePacks(), deps.probeIntervalMs);
        } catch (err) {
          deps.log.debug({ account: id, err: (err as Error).message }, 'could not read the account balance');
        }
      }
    } catch (err) {
      deps.log.debug({ err: (err as Error).message }, 'balance round failed');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void round(), CHECK_EVERY_MS);
  timer.unref();
  void round();
  return { stop: () => clearInterval(timer) };
}
