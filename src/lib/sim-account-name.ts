/** A simulated account's name: also its path prefix (`/NAME`), so URL-safe and short. */
export const SIM_ACCOUNT_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;
