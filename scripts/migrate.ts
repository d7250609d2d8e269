/**
 * `npm run migrate [-- --config PATH] [--data-dir DIR]`: applies pending migrations to the database the
 * server would use (see database-target.ts). The server also migrates at start; this is for deploys
 * that migrate first. A failure is one sentence and exit code 1.
 */
import { runMigrations } from '../src/actors/store/create-database.js';
import { databaseTarget, exitWith, openTarget, parseScriptArgs, reasonOf } from './database-target.js';

const HELP = `Usage: npm run migrate -- [--config PATH] [--data-dir DIR]

Applies pending migrations to the database the server would use: database.url (or DATABASE_URL) from
the config, else the embedded database in database.dataDir. The server also migrates when it starts.

Options:
  -c, --config PATH   the config file (default: ./switchboard.config.json when it exists)
      --data-dir DIR  the embedded database in DIR, whatever the config says
  -h, --help          print this help and exit`;

const { values } = parseScriptArgs('migrate', HELP, { config: { type: 'string', short: 'c' }, 'data-dir': { type: 'string' } });
const target = databaseTarget({ config: values.config, dataDir: values['data-dir'] });
const database = await openTarget(target, 'migrate');
let applied: string[];
try {
  applied = await runMigrations(database.db);
} catch (error) {
  await database.close().catch(() => undefined);
  exitWith('migrate', `${target.where}: ${reasonOf(error)}`);
}
await database.close();
console.log(applied.length > 0 ? `${target.where}: applied ${applied.join(', ')}` : `${target.where}: up to date`);
