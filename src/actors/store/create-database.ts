/**
 * Opens the database: embedded PGlite in a directory by default, a PostgreSQL server when a URL is
 * configured. Both speak the same SQL through kysely, so nothing above this file knows which it got.
 */
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Kysely, Migrator, PostgresDialect, sql, type MigrationResult } from 'kysely';
import { migrations } from '../../../migrations/index.js';
import { lockDataDir, type DataDirLock } from './data-dir-lock.js';
import { createPgliteDataDir } from './create-pglite-data-dir.js';
import { PgliteWorkerDialect, startPgliteWorker } from './pglite-worker-client.js';
import { createPostgresPool } from './postgres-pool.js';
import type { DatabaseSchema } from './schema.js';
import type { StoreUnavailableError } from './store-errors.js';

/** Which engine a {@link Database} runs on. */
export type DialectName = 'pglite' | 'postgres';

/** Where the data lives: `url` wins when set (the `database` section of the config). */
export interface DatabaseConfig {
  /** `postgres://…`; null/undefined selects the embedded PGlite. */
  url?: string | null;
  /**
   * PGlite's data directory, created when missing; one process at a time may open it (a second gets
   * `DataDirInUseError`). `memory://` keeps everything in memory.
   */
  dataDir: string;
  /** PostgreSQL: giving up on opening a connection (default 5 s). */
  connectTimeoutMs?: number;
  /** PostgreSQL: giving up on one statement (default 10 s); the connection is then discarded. */
  statementTimeoutMs?: number;
}

/** An open database. Whoever opened it closes it. */
export interface Database {
  readonly db: Kysely<DatabaseSchema>;
  readonly dialect: DialectName;
  /** Ends the pool or shuts PGlite down; queries afterwards fail. */
  close(): Promise<void>;
}

/** Options of {@link createDatabase}. */
export interface CreateDatabaseOptions {
  /**
   * Called when an idle pooled PostgreSQL connection fails (server restart, network). Without a
   * listener node-postgres would raise it as an uncaught `error` event; the pool replaces the client.
   */
  onPoolError?: (error: Error) => void;
  /** Pool size for PostgreSQL (default 10). PGlite has a single connection regardless. */
  maxConnections?: number;
  /** The embedded database's thread died: nothing can use the database in this process any more. */
  onLost?: (error: StoreUnavailableError) => void;
  /** A new embedded database could not be copied from its template (see create-pglite-data-dir.ts). */
  onTemplateError?: (error: unknown) => void;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_STATEMENT_TIMEOUT_MS = 10_000;

/**
 * Opens PGlite in `config.dataDir` or, when `config.url` is set, a pg pool, and checks that the
 * database answers. Does not migrate: call {@link runMigrations}.
 */
export async function createDatabase(
  config: DatabaseConfig,
  options: CreateDatabaseOptions = {},
): Promise<Database> {
  // PostgreSQL serves many processes, and `memory://` is this process's own: only a folder is locked.
  const lock = config.url || config.dataDir.startsWith('memory://') ? undefined : await lockFolder(config.dataDir);
  let db: Kysely<DatabaseSchema>;
  try {
    db = config.url ? createPostgres(config, config.url, options) : await createPglite(config.dataDir, options);
  } catch (error) {
    lock?.release();
    throw error;
  }
  try {
    // Fail at start with the driver's message (bad URL, unreadable dataDir), not at the first job.
    await sql`select 1`.execute(db);
  } catch (error) {
    await db.destroy().catch(() => undefined);
    lock?.release();
    throw error;
  }
  let closed: Promise<void> | undefined;
  return {
    db,
    dialect: config.url ? 'postgres' : 'pglite',
    close: () =>
      (closed ??= (async () => {
        try {
          await db.destroy();
        } finally {
          // Only once PGlite has let go of the folder may another process open it.
          lock?.release();
        }
      })()),
  };
}

/** Creates the data folder when missing and takes its lock (see data-dir-lock.ts). */
async function lockFolder(dataDir: string): Promise<DataDirLock> {
  const dir = resolve(dataDir);
  await mkdir(dir, { recursive: true });
  return lockDataDir(dir, dataDir);
}

function createPostgres(config: DatabaseConfig, url: string, options: CreateDatabaseOptions): Kysely<DatabaseSchema> {
  const pool = createPostgresPool(url, {
    connectTimeoutMs: config.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    statementTimeoutMs: config.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS,
    ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
    ...(options.onPoolError === undefined ? {} : { onIdleError: options.onPoolError }),
  });
  return new Kysely<DatabaseSchema>({ dialect: new PostgresDialect({ pool }) });
}

async function createPglite(dataDir: string, options: CreateDatabaseOptions): Promise<Kysely<DatabaseSchema>> {
  const inMemory = dataDir.startsWith('memory://');
  const dir = inMemory ? dataDir : resolve(dataDir);
  // A new folder is made by a process of its own, whose memory goes when it ends (see pglite-initdb.mjs).
  if (!inMemory) await createPgliteDataDir(dir, options.onTemplateError === undefined ? {} : { onTemplateError: options.onTemplateError });
  // On a thread of its own: a statement blocks its thread for up to milliseconds (see pglite-worker.mjs).
  const worker = await startPgliteWorker(dir, options.onLost === undefined ? {} : { onLost: options.onLost });
  // The dialect closes the worker when kysely is destroyed.
  return new Kysely<DatabaseSchema>({ dialect: new PgliteWorkerDialect(worker) });
}

/** Raised when a migration fails; `results` says which ran, which failed and which were skipped. */
export class MigrationError extends Error {
  readonly results: readonly MigrationResult[];
  constructor(cause: unknown, results: readonly MigrationResult[]) {
    const failed = results.find((result) => result.status === 'Error');
    super(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${String(cause)}`, { cause });
    this.name = 'MigrationError';
    this.results = results;
  }
}

/** The migrator over `migrations/` (exported for tests and tools that migrate down). */
export function createMigrator(db: Kysely<DatabaseSchema>): Migrator {
  return new Migrator({ db, provider: { getMigrations: async () => ({ ...migrations }) } });
}

/**
 * Applies every pending migration in one transaction (kysely takes an advisory lock, so two processes
 * starting together migrate once). Returns the names applied now; throws {@link MigrationError}.
 */
export async function runMigrations(db: Kysely<DatabaseSchema>): Promise<string[]> {
  const { error, results = [] } = await createMigrator(db).migrateToLatest();
  if (error !== undefined) throw new MigrationError(error, results);
  return results.filter((result) => result.status === 'Success').map((result) => result.migrationName);
}
