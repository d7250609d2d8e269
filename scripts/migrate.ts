/**
 * `npm run migrate [-- --data-dir DIR]`: applies pending migrations to PostgreSQL when DATABASE_URL
 * is set, else to the PGlite database in DIR (default ./data). The server also migrates at start;
 * this is for deploys that migrate first.
 */
import { parseArgs } from 'node:util';
import { createDatabase, runMigrations } from '../src/actors/store/create-database.js';

// Minimal on purpose: to be replaced by the config loader (database.url / database.dataDir).
const { values } = parseArgs({ options: { 'data-dir': { type: 'string', default: './data' } } });
const url = process.env['DATABASE_URL'] || null;
const database = await createDatabase({ url, dataDir: values['data-dir'] });
try {
  const applied = await runMigrations(database.db);
  const where = url ? 'PostgreSQL (DATABASE_URL)' : `PGlite in ${values['data-dir']}`;
  console.log(applied.length > 0 ? `${where}: applied ${applied.join(', ')}` : `${where}: up to date`);
} finally {
  await database.close();
}
