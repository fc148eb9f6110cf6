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

const USAGE = `usage:
  npm run cli -- keys create --name NAME   create a tenant key (prints its credentials once, as JSON)
  npm run cli -- keys list                 list keys (no secrets)
  npm run cli -- keys revoke ID            revoke a key
  npm run cli -- keys rotate-secret ID     new secret_key for the AK/SK pair (the old one stops working at once)
  npm run cli -- keys rotate-webhook-secret ID    new webhook secret; the old one keeps signing too
  npm run cli -- keys finish-webhook-rotation ID  stop signing with the old webhook secret${ACCOUNTS_USAGE}`;

/** Prints results as JSON on stdout (for scripts); everything else goes to stderr. */
async function main(argv: string[]): Promise<number> {
  const group = argv[0];
  if (group !== 'keys' && group !== 'accounts') return usage();
  if (group === 'keys' && !argv[1]) return usage();
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
    const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, options: { name: { type: 'string' } } });
    const [, command, arg] = positionals;
    if (command === 'create') {
      const name = values.name?.trim();
      if (!name || name.length > 200) return usage('--name is required (1 to 200 characters)');
      console.log(JSON.stringify(await createTenant(db, secrets, name)));
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
