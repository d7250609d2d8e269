/**
 * `npm run ingest -- DIR [--config PATH] [--data-dir D]`: loads every .md and .txt file under DIR
 * (recursively) into the documents table for `document.search` / `document.read`. The id is the path
 * relative to DIR, so ingesting again updates documents in place. Uses the server's database (config,
 * DATABASE_URL), or PGlite in D.
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, extname, join, relative, sep } from 'node:path';
import { parseArgs } from 'node:util';
import { databaseTarget } from './database-target.js';
import { createDatabase, runMigrations } from '../src/actors/store/create-database.js';
import { createDocumentStore } from '../src/actors/store/document-store.js';

const EXTENSIONS = new Set(['.md', '.txt']);

/** Every .md/.txt file under `dir`, skipping hidden entries (.git, .obsidian, …). */
async function* walk(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.isFile() && EXTENSIONS.has(extname(entry.name).toLowerCase())) yield path;
  }
}

/** The first markdown heading of a .md file, else the file name without its extension. */
function titleOf(path: string, body: string): string {
  if (extname(path).toLowerCase() === '.md') {
    const heading = /^#{1,6}[ \t]+(.+?)[ \t#]*$/m.exec(body);
    if (heading?.[1]) return heading[1].trim();
  }
  return basename(path, extname(path));
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { config: { type: 'string' }, 'data-dir': { type: 'string' } },
});
const root = positionals[0];
if (root === undefined || positionals.length > 1) {
  console.error('usage: npm run ingest -- DIR [--config PATH] [--data-dir DIR]');
  process.exit(2);
}

const target = databaseTarget({ config: values.config, dataDir: values['data-dir'] });
const database = await createDatabase({ url: target.url, dataDir: target.dataDir });
try {
  await runMigrations(database.db);
  const documents = createDocumentStore(database.db);
  let count = 0;
  for await (const path of walk(root)) {
    // Strip a BOM and NUL bytes (PostgreSQL text cannot hold U+0000).
    const body = (await readFile(path, 'utf8')).replace(/^\uFEFF/, '').replaceAll('\u0000', '');
    const id = relative(root, path).split(sep).join('/');
    await documents.upsertDocument({ id, title: titleOf(path, body), path: id, body });
    count += 1;
  }
  console.log(`ingested ${count} document${count === 1 ? '' : 's'} from ${root}`);
} finally {
  await database.close();
}
