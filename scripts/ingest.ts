/**
 * `npm run ingest -- DIR [--config PATH] [--data-dir D] [--max-bytes N]`: loads every .md and .txt file
 * under DIR (recursively) into the documents table for `document.search` / `document.read`. The id is
 * the path relative to DIR, so ingesting again updates documents in place. Uses the server's database
 * (config, DATABASE_URL), or PGlite in D.
 *
 * A file that cannot be a document — over N bytes (default 1 MiB), not UTF-8, unreadable, or refused
 * by the database (PostgreSQL's full-text index of one row is limited to 1 MB) — is skipped with one
 * warning line and the rest are ingested. What stops the run is one sentence and exit code 1: DIR
 * missing or not a folder, the database unreachable or in use, a failure of the database mid-run.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join, relative, sep } from 'node:path';
import { databaseTarget, exitWith, openTarget, parseScriptArgs, reasonOf } from './database-target.js';
import { runMigrations } from '../src/actors/store/create-database.js';
import { createDocumentStore } from '../src/actors/store/document-store.js';
import { StoreRejectedError } from '../src/actors/store/store-errors.js';
import { storableText } from '../src/storable-text.js';

const EXTENSIONS = new Set(['.md', '.txt']);
/** Default size cap of one file: documents are notes, not dumps (and a row's tsvector is capped at 1 MB). */
const DEFAULT_MAX_BYTES = 1024 * 1024;
const USAGE = 'usage: npm run ingest -- DIR [--config PATH] [--data-dir DIR] [--max-bytes N]';
const HELP = `Usage: npm run ingest -- DIR [--config PATH] [--data-dir DIR] [--max-bytes N]

Loads every .md and .txt file under DIR into the database the server uses, for document search.
Ingesting again updates the documents in place (a document's id is its path under DIR). A file over
the size cap, not UTF-8, or refused by the database is skipped with a warning.

Options:
  -c, --config PATH   the config file (default: ./switchboard.config.json when it exists)
      --data-dir DIR  the embedded database in DIR, whatever the config says
      --max-bytes N   skip files larger than N bytes (default ${1024 * 1024})
  -h, --help          print this help and exit`;

/** A sentence that ends the run. */
class Failure extends Error {}

const { values, positionals } = parseScriptArgs(
  'ingest',
  HELP,
  { config: { type: 'string', short: 'c' }, 'data-dir': { type: 'string' }, 'max-bytes': { type: 'string' } },
  true,
);
const root = positionals[0];
const maxBytes = values['max-bytes'] === undefined ? DEFAULT_MAX_BYTES : Number(values['max-bytes']);
if (root === undefined || positionals.length > 1 || !Number.isSafeInteger(maxBytes) || maxBytes < 1) {
  console.error(USAGE);
  process.exit(2);
}

// Check the folder before touching the database: a typo should not create ./data or wait for a server.
const rootStat = await stat(root).catch((error: unknown) =>
  exitWith('ingest', (error as { code?: unknown }).code === 'ENOENT' ? `${root} does not exist` : `cannot read ${root}: ${reasonOf(error)}`),
);
if (!rootStat.isDirectory()) exitWith('ingest', `${root} is a file, not a folder: give the folder that holds the documents`);

const target = databaseTarget({ config: values.config, dataDir: values['data-dir'] });
const database = await openTarget(target, 'ingest');
let ingested = 0;
let skipped = 0;
let failure: string | undefined;
const skip = (what: string, why: string): void => {
  skipped += 1;
  console.error(`ingest: skipped ${what}: ${why}`);
};
try {
  await runMigrations(database.db).catch((error: unknown) => {
    throw new Failure(`cannot prepare the database (${target.where}): ${reasonOf(error)}`);
  });
  const documents = createDocumentStore(database.db);
  for await (const path of walk(root, root, skip)) {
    const id = relative(root, path).split(sep).join('/');
    const read = await readDocument(path);
    if (typeof read !== 'string') {
      skip(id, read.skip);
      continue;
    }
    // Text PostgreSQL can store (no U+0000, no lone surrogates).
    const body = storableText(read);
    try {
      await documents.upsertDocument({ id, title: titleOf(path, body), path: id, body });
      ingested += 1;
    } catch (error) {
      // This row, not the database: the next file may go in (a too-large full-text index, say).
      if (error instanceof StoreRejectedError) skip(id, error.sqlState === '54000' ? 'too many distinct words for the full-text index (SQLSTATE 54000)' : reasonOf(error));
      else throw new Failure(`could not store ${id}: ${reasonOf(error)} (${ingested} stored before)`);
    }
  }
} catch (error) {
  failure = error instanceof Failure ? error.message : `stopped: ${reasonOf(error)} (${ingested} stored before)`;
} finally {
  await database.close();
}
if (failure !== undefined) exitWith('ingest', failure);
console.log(`ingested ${ingested} document${ingested === 1 ? '' : 's'} from ${root}, skipped ${skipped}`);

/** Every .md/.txt file under `dir` of `top`, skipping hidden entries (.git, .obsidian, …) and unreadable folders. */
async function* walk(top: string, dir: string, onSkip: (what: string, why: string) => void): AsyncGenerator<string> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    // The root was readable a moment ago; a subfolder may not be.
    if (dir === top) throw new Failure(`cannot read ${top}: ${reasonOf(error)}`);
    onSkip(`${relative(top, dir).split(sep).join('/')}/`, reasonOf(error));
    return;
  }
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(top, path, onSkip);
    else if (entry.isFile() && EXTENSIONS.has(extname(entry.name).toLowerCase())) yield path;
  }
}

/** The file's text (a BOM dropped), or why it is skipped. */
async function readDocument(path: string): Promise<string | { skip: string }> {
  let bytes: Buffer;
  try {
    // Look at the size first: a 4 GB log file is never read into memory.
    const { size } = await stat(path);
    if (size > maxBytes) return { skip: tooLarge(size) };
    bytes = await readFile(path);
  } catch (error) {
    return { skip: reasonOf(error) };
  }
  // It may have grown between the two calls.
  if (bytes.length > maxBytes) return { skip: tooLarge(bytes.length) };
  try {
    // `fatal`: a byte sequence that is not UTF-8 throws instead of becoming U+FFFD (a Latin-1 or UTF-16
    // file would otherwise be stored as mojibake). The decoder drops a leading BOM.
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return { skip: 'not valid UTF-8 text' };
  }
}

function tooLarge(size: number): string {
  return `${formatBytes(size)} is over the limit of ${formatBytes(maxBytes)} (--max-bytes)`;
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  const [value, unit] = bytes < 1024 * 1024 ? [bytes / 1024, 'KiB'] : [bytes / (1024 * 1024), 'MiB'];
  return `${Number(value.toFixed(1))} ${unit}`;
}

/** The first markdown heading of a .md file, else the file name without its extension. */
function titleOf(path: string, body: string): string {
  if (extname(path).toLowerCase() === '.md') {
    const heading = /^#{1,6}[ \t]+(.+?)[ \t#]*$/m.exec(body);
    if (heading?.[1]) return heading[1].trim();
  }
  return basename(path, extname(path));
}
