/** What an attempt returns when another writer changed the row between its read and its guarded write. */
export const RACED = Symbol('raced');

/** Attempts at one change while other writers keep changing the row in between (polls, claims, cancels). */
const MAX_RACES = 10;

/**
 * Runs `attempt` (read, decide, guarded write) again while it reports RACED: a guarded write that
 * matched nothing means the decision was taken on a row that no longer exists as read. Bounded, so
 * a row rewritten without end fails loudly instead of spinning.
 */
export async function retryOnRace<T>(what: string, attempt: () => Promise<T | typeof RACED>): Promise<T> {
  for (let race = 0; race < MAX_RACES; race++) {
    const result = await attempt();
    if (result !== RACED) return result;
  }
  throw new Error(`${what}: gave up after ${MAX_RACES} concurrent updates`);
}
