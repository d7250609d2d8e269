/**
 * `npm run migrate [-- --config PATH] [--data-dir DIR]`: applies pending migrations to the database the
 * server would use (see database-target.ts). The server also migrates at start; this is for deploys
 * that migrate first. A failure is one sentence and exit code 1.
 */
import { parseArgs } from 'node:util';
import { runMigrations } from '../src/actors/store/create-database.js';
import { databaseTarget, exitWith, openTarget, reasonOf } from './database-target.js';

const { values } = parseArgs({ options: { config: { type: 'string' }, 'data-dir': { type: 'string' } } });
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
