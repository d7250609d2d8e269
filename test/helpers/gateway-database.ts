/**
 * The database a whole gateway runs on in a test, for either dialect, prepared before the gateway
 * starts (migrated, and with whatever `install` adds: triggers, say) and readable by the test:
 *
 * - PGlite: a data directory, seeded by opening it, migrating, installing and closing it again. Only
 *   one process may hold a PGlite directory, so `inspect` opens it only while no gateway does (after
 *   the gateway has closed).
 * - PostgreSQL (`TEST_DATABASE_URL`): a database of its own, dropped by `dispose`; `inspect` reads it
 *   through a second connection at any time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import { createDatabase, runMigrations } from '../../src/actors/store/create-database.js';
import type { DatabaseSchema } from '../../src/actors/store/schema.js';
import { openTestDatabase, type DialectName } from './databases.js';

export interface GatewayDatabase {
  dialect: DialectName;
  /** Spread into `startTestGateway`'s options: `dataDir` (PGlite) or `config.database` (PostgreSQL). */
  gatewayOptions: { dataDir?: string; config?: Record<string, unknown> };
  /** The `database` section of a gateway's config file (for a child gateway). */
  databaseConfig: { url: string | null; dataDir: string };
  /** Runs `read` against the gateway's database (PGlite: only while no gateway holds it open). */
  inspect<T>(read: (db: Kysely<DatabaseSchema>) => Promise<T>): Promise<T>;
  dispose(): Promise<void>;
}

export interface GatewayDatabaseOptions {
  /** Runs once on the migrated database before any gateway opens it. */
  install?: (db: Kysely<DatabaseSchema>) => Promise<void>;
  /** Prefix of the temporary directory. */
  name?: string;
}

export async function prepareGatewayDatabase(dialect: DialectName, options: GatewayDatabaseOptions = {}): Promise<GatewayDatabase> {
  const dir = mkdtempSync(join(tmpdir(), `sb-${options.name ?? 'gateway-db'}-`));
  if (dialect === 'pglite') {
    const dataDir = join(dir, 'data');
    const seed = await createDatabase({ dataDir });
    try {
      await runMigrations(seed.db);
      await options.install?.(seed.db);
    } finally {
      await seed.close();
    }
    return {
      dialect,
      gatewayOptions: { dataDir },
      databaseConfig: { url: null, dataDir },
      async inspect(read) {
        const opened = await createDatabase({ dataDir });
        try {
          return await read(opened.db);
        } finally {
          await opened.close();
        }
      },
      async dispose() {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const adminUrl = process.env['TEST_DATABASE_URL'];
  if (!adminUrl) throw new Error('TEST_DATABASE_URL is not set: source .ci/postgres.sh before the tests');
  const database = await openTestDatabase('postgres');
  try {
    await runMigrations(database.db);
    await options.install?.(database.db);
  } catch (error) {
    await database.close();
    throw error;
  }
  const url = new URL(adminUrl);
  url.pathname = `/${database.location}`;
  const dataDir = join(dir, 'unused');
  return {
    dialect,
    gatewayOptions: { config: { database: { url: url.toString(), dataDir } } },
    databaseConfig: { url: url.toString(), dataDir },
    inspect: (read) => read(database.db),
    async dispose() {
      await database.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The base tables of the database's schema. */
export async function tableNames(db: Kysely<DatabaseSchema>): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    select table_name as name from information_schema.tables
    where table_schema = current_schema() and table_type = 'BASE TABLE' order by table_name`.execute(db);
  return rows.map((row) => row.name);
}

/** Every row of `table` as JSON text (every column, jsonb included), for scanning. */
export async function rowsAsText(db: Kysely<DatabaseSchema>, table: string): Promise<string[]> {
  const { rows } = await sql<{ row: string }>`select row_to_json(t)::text as row from ${sql.table(table)} as t`.execute(db);
  return rows.map((row) => row.row);
}
