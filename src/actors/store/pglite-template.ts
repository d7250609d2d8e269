/**
 * Makes an empty embedded database at the latest migration, in a process of its own:
 * `node [--import tsx] pglite-template.(ts|mjs) <folder>` (`create-pglite-data-dir.ts` starts it).
 *
 * initdb runs a second PostgreSQL and an initdb program, each compiled to WebAssembly, and the first
 * migrations touch most of the catalogs. A WebAssembly heap never shrinks, and a thread that ends does
 * not give all of its memory back either: a gateway that did this work itself kept 650–800 MiB after
 * initdb and about 40 MiB more after migrating. A process gives everything back when it exits, and the
 * gateway then opens a finished folder with the heap a restart has.
 *
 * Exit code 0 when the folder is ready; otherwise 1 and one line on stderr.
 */
import { PGlite } from '@electric-sql/pglite';
import { Kysely } from 'kysely';
import { runMigrations } from './create-database.js';
import { PgliteWorkerDialect } from './pglite-worker-client.js';
import type { DatabaseSchema } from './schema.js';

const folder = process.argv[2];
if (folder === undefined) {
  process.stderr.write('usage: pglite-template <folder>\n');
  process.exit(2);
}
try {
  const pglite = await PGlite.create(folder);
  // The worker's dialect over PGlite in this process: this process has nothing else to run.
  const db = new Kysely<DatabaseSchema>({
    dialect: new PgliteWorkerDialect({ query: (text, params) => pglite.query(text, [...params]), close: () => pglite.close() }),
  });
  await runMigrations(db);
  await db.destroy();
} catch (error) {
  // Nothing here stores user data, so the message (a full disk, a folder it cannot write) holds none.
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
