/** Base name of the test databases; each jest worker gets `<base>_w<N>`, copied from `<base>_template`. */
export const TEST_DB_BASE = process.env.TEST_DATABASE_URL || 'postgresql://postgres:postgres@127.0.0.1:5432/kling_tracker_test';

/** Enough copies for jest's worker ids (maxWorkers in jest.config.js is 3; ids can go one higher on restarts). */
export const WORKER_DBS = 4;

export function workerDatabaseUrl(worker: number): string {
  const url = new URL(TEST_DB_BASE);
  url.pathname = `${url.pathname}_w${worker}`;
  return url.toString();
}
