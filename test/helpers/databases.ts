/**
 * Runs one test body against every database the store supports, as Kysely's own tests loop over
 * dialects: always PGlite, and PostgreSQL when `TEST_DATABASE_URL` points at a server (`.ci/run`
 * starts one with `.ci/postgres.sh`). In CI (`CI=true`) a missing URL fails instead of skipping, so a
 * broken CI set-up cannot quietly test PGlite alone.
 *
 * Each dialect is opened once per test file (a PGlite instance costs seconds and hundreds of MB) and
 * closed after it; on PostgreSQL each file gets a database of its own, dropped at the end.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, it } from 'vitest';
import {
  createDatabase,
  runMigrations,
  type Database,
  type DialectName,
} from '../../src/actors/store/create-database.js';

export type { DialectName };

/** A database opened for tests; `close` also removes it (temp dir or PostgreSQL database). */
export interface TestDatabase extends Database {
  /** The PostgreSQL database name or the PGlite directory, for messages. */
  readonly location: string;
}

const MISSING_POSTGRES =
  'CI=true but TEST_DATABASE_URL is not set: source .ci/postgres.sh before the tests so the store ' +
  'is tested on PostgreSQL too';

/**
 * The dialects to test here: `pglite`, plus `postgres` when `TEST_DATABASE_URL` is set. In CI without
 * the URL, `postgres` is still listed so that {@link forEachDatabase} reports it as a failure.
 */
export function testDialects(): DialectName[] {
  const withPostgres = Boolean(process.env['TEST_DATABASE_URL']) || process.env['CI'] === 'true';
  return withPostgres ? ['pglite', 'postgres'] : ['pglite'];
}

/**
 * Opens a fresh, empty (unmigrated) database of `dialect`. The caller must `close()` it. Prefer
 * {@link forEachDatabase}, which does that and shares one database per dialect and file.
 */
export async function openTestDatabase(dialect: DialectName): Promise<TestDatabase> {
  return dialect === 'pglite' ? openPglite() : openPostgres();
}

async function openPglite(): Promise<TestDatabase> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sb-pglite-'));
  const database = await createDatabase({ dataDir });
  return {
    ...database,
    location: dataDir,
    async close() {
      await database.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function openPostgres(): Promise<TestDatabase> {
  const adminUrl = process.env['TEST_DATABASE_URL'];
  if (!adminUrl) throw new Error(MISSING_POSTGRES);
  const name = `sb_test_${randomBytes(6).toString('hex')}`;
  await admin(adminUrl, `CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  let database: Database;
  try {
    database = await createDatabase({ url: url.toString(), dataDir: 'unused' });
  } catch (error) {
    await admin(adminUrl, `DROP DATABASE IF EXISTS ${name}`);
    throw error;
  }
  return {
    ...database,
    location: name,
    async close() {
      await database.close();
      // WITH (FORCE) (PostgreSQL 13+) ends connections a failed test may have leaked.
      await admin(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/** Runs one statement on the server's maintenance database (CREATE/DROP DATABASE cannot be bound). */
async function admin(adminUrl: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/** Options of {@link forEachDatabase}. */
export interface ForEachDatabaseOptions {
  /** Apply `migrations/` before the body's tests (default true). */
  migrate?: boolean;
}

/**
 * Declares `body` once per dialect, inside `describe(dialect)`. `getDatabase()` returns the open
 * database; call it inside tests or hooks, not while declaring them. Call it once per test file: each
 * call opens its own databases (one PGlite instance each).
 *
 * ```ts
 * forEachDatabase((getDatabase, dialect) => {
 *   it('stores a message', async () => { const store = createStore(getDatabase().db); … });
 * });
 * ```
 */
export function forEachDatabase(
  body: (getDatabase: () => TestDatabase, dialect: DialectName) => void,
  options: ForEachDatabaseOptions = {},
): void {
  for (const dialect of testDialects()) {
    describe(dialect, () => {
      if (dialect === 'postgres' && !process.env['TEST_DATABASE_URL']) {
        it('has a PostgreSQL server to test against', () => {
          throw new Error(MISSING_POSTGRES);
        });
        return;
      }
      let database: TestDatabase | undefined;
      beforeAll(async () => {
        database = await openTestDatabase(dialect);
        if (options.migrate ?? true) await runMigrations(database.db);
      });
      afterAll(async () => {
        await database?.close();
      });
      body(() => {
        if (database === undefined) throw new Error(`the ${dialect} test database is not open`);
        return database;
      }, dialect);
    });
  }
}
