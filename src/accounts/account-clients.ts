import type { Db } from '../db/client';
import { KlingClient } from '../kling/kling-client';
import type { SecretBox } from '../tenants/secret-box';
import { accountEndpoint, ENV_ACCOUNT_ID } from './account-repository';

/**
 * One upstream client per account, built on first use and kept: a task's submission, polls,
 * lookups and retries all go through the account that holds it. The environment's account is built
 * from this process's own environment (its credential is never stored); a task placed before
 * accounts existed (no account recorded) is the environment's.
 */
export interface AccountClients {
  clientFor(accountId: string | null): Promise<KlingClient>;
}

export interface AccountClientsDeps {
  db: Db;
  secrets: SecretBox;
  /** The environment's client, when this process has an upstream of its own. */
  envClient?: KlingClient;
  timeoutMs: number;
}

export function createAccountClients(deps: AccountClientsDeps): AccountClients {
  const clients = new Map<string, Promise<KlingClient>>();
  return {
    clientFor(accountId) {
      const id = accountId ?? ENV_ACCOUNT_ID;
      if (id === ENV_ACCOUNT_ID) {
        if (!deps.envClient) return Promise.reject(new Error('this process has no upstream of its own (KLING_BASE_URL or a credential)'));
        return Promise.resolve(deps.envClient);
      }
      let client = clients.get(id);
      if (!client) {
        client = build(deps, id);
        clients.set(id, client);
        // A failed build (database down, account removed) is tried again next time.
        client.catch(() => clients.delete(id));
      }
      return client;
    },
  };
}

async function build(deps: AccountClientsDeps, id: string): Promise<KlingClient> {
  const endpoint = await accountEndpoint(deps.db, deps.secrets, id);
  if (!endpoint) throw new Error(`upstream account ${id} does not exist`);
  const { name, ...rest } = endpoint;
  return new KlingClient({ ...rest, timeoutMs: deps.timeoutMs, account: name });
}
