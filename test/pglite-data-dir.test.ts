/**
 * New embedded databases: copied from a template made in a process of its own, moved into place with
 * `PG_VERSION` last, made in place when no template can be kept. Real folders, real PGlite.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { createDatabase, createMigrator } from '../src/actors/store/create-database.js';
import { createPgliteDataDir, createPgliteTemplate, hasPgliteDatabase, pgliteTemplateDir } from '../src/actors/store/create-pglite-data-dir.js';
import { migrations } from '../migrations/index.js';

/** Opens `dataDir`, returns the migrations it still lacks and whether the jobs table answers, closes it. */
async function inspect(dataDir: string): Promise<{ pending: string[]; jobs: number }> {
  const database = await createDatabase({ dataDir });
  try {
    const known = await createMigrator(database.db).getMigrations();
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from jobs`.execute(database.db);
    return { pending: known.filter((m) => m.executedAt === undefined).map((m) => m.name), jobs: rows[0]!.n };
  } finally {
    await database.close();
  }
}

describe('a new embedded database', () => {
  it('is a copy of the template, which is at the latest migration and named after it', { timeout: 60_000 }, async () => {
    const template = await createPgliteTemplate();
    expect(template).toBe(pgliteTemplateDir());
    expect(template.endsWith(`-${Object.keys(migrations).sort().at(-1)}`)).toBe(true);
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-pglite-copy-'));
    expect(await inspect(dataDir)).toEqual({ pending: [], jobs: 0 });
    expect(readdirSync(dataDir)).not.toContain('.initdb');
  });

  it('after a first start stopped halfway (scratch and stray folders, no PG_VERSION), the next start makes it whole', { timeout: 60_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-pglite-halfway-'));
    mkdirSync(join(dataDir, '.initdb', 'base'), { recursive: true });
    writeFileSync(join(dataDir, '.initdb', 'base', 'junk'), 'half a copy');
    mkdirSync(join(dataDir, 'base'));
    writeFileSync(join(dataDir, 'base', 'junk'), 'moved before the stop');
    expect(hasPgliteDatabase(dataDir)).toBe(false);
    expect(await inspect(dataDir)).toEqual({ pending: [], jobs: 0 });
    expect(existsSync(join(dataDir, 'base', 'junk'))).toBe(false);
    expect(readdirSync(dataDir)).not.toContain('.initdb');
  });

  it('without a template it can keep (a read-only install), is made in place, migrated, and says why', { timeout: 90_000 }, async () => {
    const root = mkdtempSync(join(tmpdir(), 'sb-pglite-no-template-'));
    // A file where the template's folder would go: the template cannot be made.
    writeFileSync(join(root, 'not-a-folder'), '');
    const dataDir = join(root, 'data');
    mkdirSync(dataDir);
    const errors: unknown[] = [];
    await createPgliteDataDir(dataDir, { template: join(root, 'not-a-folder', 'template'), onTemplateError: (error) => errors.push(error) });
    expect(errors).toHaveLength(1);
    expect(String(errors[0])).toMatch(/ENOTDIR|not a directory/);
    expect(hasPgliteDatabase(dataDir)).toBe(true);
    expect(await inspect(dataDir)).toEqual({ pending: [], jobs: 0 });
  });
});
