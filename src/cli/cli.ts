import { parseArgs } from 'node:util';
import { loadConfig, loadDotEnv } from '../config';
import { createDb } from '../db/client';
import { createSecretBox, secretsKeyFor } from '../tenants/secret-box';
import { prepareDatabase } from '../db/migrate';
import { accountsCommand, ACCOUNTS_USAGE } from './accounts-command';
import {
  createTenant,
  finishWebhookRotation,
  listTenants,
  resealLegacySecrets,
  revokeTenant,
  rotateSecretKey,
  rotateWebhookSecret,
} from '../tenants/tenants.service';
import { resultStorageOf } from '../results/blob-stores';
import { backfillResults } from '../tasks/backfill-results';
import { createLogger } from '../logger';
import type { Config } from '../config';
import type { Db } from '../db/client';

const USAGE = `usage:
  npm run cli -- keys create --name NAME [--retention-days N]
                                           create a tenant key (prints its credentials once, as JSON); its results'
                                           copies are kept N days (default RESULT_RETENTION_DAYS, unset: forever)
  npm run cli -- results backfill [--since DATE]
                                           copy the results of tasks that succeeded without copies (resumable:
                                           run it again to go on); prints one JSON summary
  npm run cli -- keys list                 list keys (no secrets)
  npm run cli -- keys revoke ID            revoke a key
  npm run cli -- keys rotate-secret ID     new secret_key for the AK/SK pair (the old one stops working at once)
  npm run cli -- keys rotate-webhook-secret ID    new webhook secret; the old one keeps signing too
  npm run cli -- keys finish-webhook-rotation ID  stop signing with the old webhook secret${ACCOUNTS_USAGE}`;

/** Prints results as JSON on stdout (for scripts); everything else goes to stderr. */
async function main(argv: string[]): Promise<number> {
  const group = argv[0];
  if (group !== 'keys' && group !== 'accounts' && group !== 'results') return usage();
  if (group !== 'accounts' && !argv[1]) return usage();
  loadDotEnv();
  const config = loadConfig();
  // The first run creates and migrates the database, which takes a few seconds: say so.
  const slow = setTimeout(() => console.error('preparing the database (creating it and applying migrations)...'), 500);
  await prepareDatabase(config.DATABASE_URL).finally(() => clearTimeout(slow));
  const db = createDb(config.DATABASE_URL, 1);
  const key = secretsKeyFor(config);
  const secrets = createSecretBox(key);
  try {
    await resealLegacySecrets(db, key);
    if (group === 'accounts') return await accountsCommand(db, secrets, argv.slice(1), usage);
    const { positionals, values } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { name: { type: 'string' }, 'retention-days': { type: 'string' }, since: { type: 'string' } },
    });
    const [, command, arg] = positionals;
    if (group === 'results') {
      if (command !== 'backfill') return usage();
      return await backfill(config, db, values.since);
    }
    if (command === 'create') {
      const name = values.name?.trim();
      if (!name || name.length > 200) return usage('--name is required (1 to 200 characters)');
      const days =
        values['retention-days'] ?? (config.RESULT_RETENTION_DAYS === undefined ? undefined : String(config.RESULT_RETENTION_DAYS));
      if (days !== undefined && !/^[1-9]\d{0,5}$/.test(days)) return usage('--retention-days must be a whole number of days, at least 1');
      console.log(
        JSON.stringify(await createTenant(db, secrets, name, { resultRetentionDays: days === undefined ? undefined : Number(days) })),
      );
      console.error('Store these credentials now: the api_key and secret_key cannot be shown again.');
      return 0;
    }
    if (command === 'list') {
      console.log(JSON.stringify(await listTenants(db), null, 2));
      return 0;
    }
    if (command === 'revoke') {
      if (!arg) return usage('revoke needs the key id');
      const revoked = await revokeTenant(db, arg);
      console.log(JSON.stringify({ id: arg, revoked }));
      if (!revoked) console.error(`no active key with id ${arg}`);
      return revoked ? 0 : 1;
    }
    if (command === 'rotate-secret') {
      if (!arg) return usage('rotate-secret needs the key id');
      const rotated = await rotateSecretKey(db, secrets, arg);
      if (!rotated) return usage(`no active key with id ${arg}`);
      console.log(JSON.stringify(rotated));
      console.error('Store the new secret_key now: it cannot be shown again. JWTs signed with the old one are refused from now on.');
      return 0;
    }
    if (command === 'rotate-webhook-secret') {
      if (!arg) return usage('rotate-webhook-secret needs the key id');
      const rotated = await rotateWebhookSecret(db, secrets, arg);
      if (!rotated) return usage(`no active key with id ${arg}`);
      console.log(JSON.stringify(rotated));
      console.error('Webhooks are now signed with both secrets; run finish-webhook-rotation once receivers use the new one.');
      return 0;
    }
    if (command === 'finish-webhook-rotation') {
      if (!arg) return usage('finish-webhook-rotation needs the key id');
      const finished = await finishWebhookRotation(db, arg);
      console.log(JSON.stringify({ id: arg, finished }));
      return finished ? 0 : 1;
    }
    return usage();
  } finally {
    await db.$disconnect();
  }
}

/** `results backfill`: progress on stderr, one JSON summary on stdout; exit 1 when any task failed (run again to retry them). */
async function backfill(config: Config, db: Db, since: string | undefined): Promise<number> {
  const from = since === undefined ? undefined : new Date(since);
  if (from && Number.isNaN(from.getTime())) return usage('--since must be a date (2026-01-31 or an ISO timestamp)');
  const log = createLogger(config.LOG_LEVEL);
  const report = await backfillResults(
    {
      store: { db, log },
      storage: resultStorageOf(config, db),
      log,
    },
    {
      since: from,
      concurrency: config.STORAGE_CONCURRENCY,
      onTask: (id, outcome, err) => console.error(`${id} ${outcome}${err ? `: ${err.message}` : ''}`),
    },
  );
  console.log(JSON.stringify(report));
  return report.failed ? 1 : 0;
}

function usage(problem?: string): number {
  if (problem) console.error(problem);
  console.error(USAGE);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
