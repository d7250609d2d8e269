import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, loadConfig } from '../src/config/load-config.js';
import { createDatabase, type Database, type DatabaseConfig } from '../src/actors/store/create-database.js';
import { DataDirInUseError } from '../src/actors/store/data-dir-lock.js';

/** Where a script's database is, with how to name it in a sentence. */
export type DatabaseTarget = DatabaseConfig & { where: string };

/**
 * The database the server would use: `switchboard.config.json` (or `--config PATH`) with DATABASE_URL
 * over it, or `--data-dir DIR` for the embedded database in DIR (a url is then ignored). Exits with the config's problems when invalid.
 */
export function databaseTarget(options: { config?: string | undefined; dataDir?: string | undefined }): DatabaseTarget {
  try {
    const config = loadConfig(options.config === undefined ? {} : { path: options.config });
    // `--data-dir` asks for the embedded database in that folder, whatever the config's url says.
    const url = options.dataDir === undefined ? config.database.url : null;
    const dataDir = options.dataDir ?? config.database.dataDir;
    return {
      url,
      dataDir,
      connectTimeoutMs: config.database.connectTimeoutMs,
      statementTimeoutMs: config.database.statementTimeoutMs,
      where: url ? 'PostgreSQL (database.url / DATABASE_URL)' : `PGlite in ${dataDir}`,
    };
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`switchboard: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}

/**
 * Opens `target`, or ends the run with one sentence on stderr and exit code 1 — never a stack trace:
 * the folder is in use by a running gateway, the server is unreachable, the folder is unusable.
 */
export async function openTarget(target: DatabaseTarget, command: string): Promise<Database> {
  const { where, ...config } = target;
  try {
    return await createDatabase(config);
  } catch (error) {
    const sentence = error instanceof DataDirInUseError ? error.message : `cannot open the database (${where}): ${reasonOf(error)}`;
    return exitWith(command, sentence);
  }
}

/** Ends the run with `command: sentence` on stderr and exit code 1. */
export function exitWith(command: string, sentence: string): never {
  process.stderr.write(`${command}: ${sentence}\n`);
  process.exit(1);
}

/** An error as a few words for a sentence: file system codes spelt out, else its message. */
export function reasonOf(error: unknown): string {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  if (code === 'ENOENT') return 'no such file or folder';
  if (code === 'ENOTDIR') return 'not a folder';
  if (code === 'EACCES') return 'permission denied';
  return error instanceof Error ? error.message : String(error);
}

/**
 * A script's arguments, parsed strictly, with `-h`/`--help` added: `--help` prints `help` and exits 0; a
 * mistake (an unknown option, a missing value) prints one sentence and the usage, and exits 2.
 */
export function parseScriptArgs<O extends NonNullable<ParseArgsConfig['options']>>(command: string, help: string, options: O, allowPositionals = false) {
  let parsed;
  try {
    parsed = parseArgs({ options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
  } catch (error) {
    const message = (error instanceof Error ? error.message : String(error)).split(/\. To |\n/)[0]!.replace(/\.$/, '');
    process.stderr.write(`${command}: ${message}\n\n${help}\n`);
    process.exit(2);
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(`${help}\n`);
    process.exit(0);
  }
  return parsed;
}
