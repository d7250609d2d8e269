/**
 * `npm run migrate [-- --config PATH] [--data-dir DIR]`: applies pending migrations to the database the
 * server would use (see database-target.ts). The server also migrates at start; this is for deploys
 * that migrate first.
 */
import { parseArgs } from 'node:util';
import { createDatabase, runMigrations } from '../src/actors/store/create-database.js';
import { databaseTarget } from './database-target.js';

const { values } = parseArgs({ options: { config: { type: 'string' }, 'data-dir': { type: 'string' } } });
const { where, ...target } = databaseTarget({ config: values.config, dataDir: values['data-dir'] });
const database = await createDatabase(target);
try {
  const applied = await runMigrations(database.db);
  console.log(applied.length > 0 ? `${where}: applied ${applied.join(', ')}` : `${where}: up to date`);
} finally {
  await database.close();
}
