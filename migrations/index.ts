/**
 * Every migration, by name, imported explicitly. Kysely's `FileMigrationProvider` reads a directory at
 * run time, which depends on the cwd and on whether the files are `.ts` (tsx) or `.js`; a static map
 * works the same from tsx, vitest and a bundle. Names sort in the order they run.
 */
import type { Migration } from 'kysely';
import * as initial from './0001-initial.js';
import * as owners from './0002-owners.js';
import * as synologyDeliveries from './0003-synology-deliveries.js';
import * as jobTrace from './0004-job-trace.js';

/** All migrations, keyed by their (sortable) name. Add new ones at the end. */
export const migrations: Readonly<Record<string, Migration>> = {
  '0001-initial': initial,
  '0002-owners': owners,
  '0003-synology-deliveries': synologyDeliveries,
  '0004-job-trace': jobTrace,
};
