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
import { storableText } from '../src/storable-text.js';

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

/** Ends the run with one sentence: never a stack trace, and never a file's text (errors are sanitized at the store's edge). */
function fail(sentence: string): never {
  console.error(`ingest: ${sentence}`);
  process.exit(1);
}

const database = await createDatabase(target).catch((error: unknown) => fail(`cannot open the database (${target.where}): ${reasonOf(error)}`));
let count = 0;
let failure: string | undefined;
let current: string | undefined;
try {
  await runMigrations(database.db);
  const documents = createDocumentStore(database.db);
  for await (const path of walk(root)) {
    current = relative(root, path).split(sep).join('/');
    // Strip a BOM and make the text storable (PostgreSQL text cannot hold U+0000).
    const body = storableText((await readFile(path, 'utf8')).replace(/^\uFEFF/, ''));
    await documents.upsertDocument({ id: current, title: titleOf(path, body), path: current, body });
    count += 1;
  }
} catch (error) {
  failure = `${current === undefined ? `cannot read ${root}` : `could not store ${current}`}: ${reasonOf(error)} (${count} stored before)`;
} finally {
  await database.close();
}
if (failure !== undefined) fail(failure);
console.log(`ingested ${count} document${count === 1 ? '' : 's'} from ${root}`);

function reasonOf(error: unknown): string {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  if (code === 'ENOENT') return 'no such file or folder';
  if (code === 'ENOTDIR') return 'not a folder';
  if (code === 'EACCES') return 'permission denied';
  return error instanceof Error ? error.message : String(error);
}
