import { workerDatabaseUrl } from './helpers/databases';

// Each jest worker has its own database, so test files running in parallel never see each other's rows.
process.env.DATABASE_URL = workerDatabaseUrl(Number(process.env.JEST_WORKER_ID ?? '1'));
