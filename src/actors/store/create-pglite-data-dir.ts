/**
 * The first start of the embedded database. A new data folder is a copy of a template: an empty
 * database at the latest migration, made once per PGlite version and migration set in a process of its
 * own (see `pglite-template.ts` for why), and kept in `node_modules/.cache/switchboard/` (`npm ci` makes
 * it: the `postinstall` script). A copy takes a fraction of a second where initdb takes 5–7 s, and the
 * gateway's first start then costs what a restart costs, in time and in memory.
 *
 * The copy is made in a scratch folder and moved into place with `PG_VERSION` last. PGlite takes a folder
 * with `PG_VERSION` for a finished database, so a first start stopped halfway (Ctrl-C) leaves no
 * half-made database behind: the next start sees no `PG_VERSION` and starts over.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrations } from '../../../migrations/index.js';
import { PACKAGE_ROOT } from '../../package-root.js';

/** Where initdb or the copy writes before the result is moved into the data folder. */
const SCRATCH = '.initdb';
/** The file that marks a finished database; moved last. */
const MARKER = 'PG_VERSION';

/** Whether `dataDir` holds a finished embedded database. */
export function hasPgliteDatabase(dataDir: string): boolean {
  return existsSync(join(dataDir, MARKER));
}

/** The template for this PGlite version and migration set: a folder that {@link createPgliteTemplate} fills. */
export function pgliteTemplateDir(): string {
  const latest = Object.keys(migrations).sort().at(-1) ?? 'none';
  return join(PACKAGE_ROOT, 'node_modules', '.cache', 'switchboard', `pglite-${pgliteVersion()}-${latest}`);
}

/**
 * Makes the template unless it exists: initdb into a folder of its own, renamed into place when done, so
 * a process that finds the template finds it whole (two processes making it at once: the second's is
 * dropped). Resolves with its path.
 */
export async function createPgliteTemplate(template = pgliteTemplateDir()): Promise<string> {
  if (hasPgliteDatabase(template)) return template;
  const making = `${template}.${process.pid}`;
  await rm(making, { recursive: true, force: true });
  await mkdir(dirname(making), { recursive: true });
  try {
    await runTemplateProcess(making);
    await rename(making, template).catch((error: unknown) => {
      if (!hasPgliteDatabase(template)) throw error;
    });
  } finally {
    await rm(making, { recursive: true, force: true });
  }
  return template;
}

/** Options of {@link createPgliteDataDir}. */
export interface CreatePgliteDataDirOptions {
  /** The template folder (default {@link pgliteTemplateDir}). */
  template?: string;
  /** The template could not be made or read; initdb then runs into the data folder itself. */
  onTemplateError?: (error: unknown) => void;
}

/**
 * Makes `dataDir` (an existing folder this process has locked) hold an empty embedded database, unless
 * it already does. When the template cannot be made (a read-only install), the template's process writes
 * into the data folder itself. Rejects with its message when that fails too.
 */
export async function createPgliteDataDir(dataDir: string, options: CreatePgliteDataDirOptions = {}): Promise<void> {
  if (hasPgliteDatabase(dataDir)) return;
  const scratch = join(dataDir, SCRATCH);
  await rm(scratch, { recursive: true, force: true });
  const template = await createPgliteTemplate(options.template).catch((error: unknown) => {
    options.onTemplateError?.(error);
    return undefined;
  });
  if (template === undefined) await runTemplateProcess(scratch);
  else await cp(template, scratch, { recursive: true });
  const entries = (await readdir(scratch)).filter((name) => name !== MARKER);
  for (const name of [...entries, MARKER]) {
    // Left by a first start that stopped while moving: replaced, since it never became a database.
    await rm(join(dataDir, name), { recursive: true, force: true });
    await rename(join(scratch, name), join(dataDir, name));
  }
  await rm(scratch, { recursive: true, force: true });
}

function pgliteVersion(): string {
  // The package's exports hide its package.json from import; its location does not.
  const entry = fileURLToPath(import.meta.resolve('@electric-sql/pglite'));
  for (let dir = dirname(entry); dirname(dir) !== dir; dir = dirname(dir)) {
    const path = join(dir, 'package.json');
    if (!existsSync(path)) continue;
    const pkg = JSON.parse(readFileSync(path, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === '@electric-sql/pglite' && pkg.version) return pkg.version;
  }
  return 'unknown';
}

/**
 * `pglite-template` on `folder` in a child process: the bundled `.mjs` next to `dist/main.mjs` under
 * `npm start`, the TypeScript source through tsx from `src/` (tests, scripts).
 */
function runTemplateProcess(folder: string): Promise<void> {
  const fromSource = import.meta.url.endsWith('.ts');
  const script = fileURLToPath(new URL(`./pglite-template.${fromSource ? 'ts' : 'mjs'}`, import.meta.url));
  const loader = fromSource ? ['--import', import.meta.resolve('tsx')] : [];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...loader, script, folder], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr = (stderr + text).slice(-4096)));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else {
        const why = stderr.trim().split('\n').at(-1) || (signal ? `stopped by ${signal}` : `exit code ${code}`);
        reject(new Error(`creating the embedded database failed: ${why}`));
      }
    });
  });
}
