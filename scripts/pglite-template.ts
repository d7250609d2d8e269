/**
 * `postinstall`: makes the template every new embedded database is copied from (see
 * `src/actors/store/create-pglite-data-dir.ts`), so that the gateway's first start takes a second and
 * not initdb's five to seven. It never fails the install: without a template, the first start runs
 * initdb itself.
 */
import { createPgliteTemplate, hasPgliteDatabase, pgliteTemplateDir } from '../src/actors/store/create-pglite-data-dir.js';

const template = pgliteTemplateDir();
if (!hasPgliteDatabase(template)) {
  const startedAt = performance.now();
  try {
    await createPgliteTemplate(template);
    const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
    process.stdout.write(`switchboard: made the empty embedded database new data folders start from (${seconds} s)\n`);
  } catch (error) {
    process.stderr.write(`switchboard: could not make the embedded database template (${error instanceof Error ? error.message : String(error)}); the first start will create the database itself\n`);
  }
}
