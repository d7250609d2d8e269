/**
 * `npm run ingest` (issue 9, item 5): the real script in its own process, on real folders and PGlite.
 * A file that cannot be a document is skipped with one warning and the rest go in; what stops the run
 * is one sentence and exit code 1.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, runMigrations } from '../src/actors/store/create-database.js';
import { runScript } from './helpers/run-script.js';
import { closedPort } from './helpers/closed-port.js';

let dir: string;
let dataDir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sb-ingest-'));
  dataDir = join(dir, 'data');
  // A document the database refuses, as PostgreSQL refuses one whose full-text index is over 1 MB
  // (SQLSTATE 54000; a real one takes a megabyte of distinct words and many seconds to build).
  const seed = await createDatabase({ dataDir });
  try {
    await runMigrations(seed.db);
    await sql`
      create function sb_test_refuse_document() returns trigger language plpgsql as $$
      begin
        if new.body like '%refuse this document%' then
          raise exception 'string is too long for tsvector' using errcode = '54000';
        end if;
        return new;
      end
      $$`.execute(seed.db);
    await sql`create trigger sb_test_refuse_document before insert or update on documents
      for each row execute function sb_test_refuse_document()`.execute(seed.db);
  } finally {
    await seed.close();
  }
}, 120_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `files` (relative path → content) under a new folder of `dir`. */
function folder(name: string, files: Record<string, string | Buffer>): string {
  const root = join(dir, name);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

async function storedDocuments(): Promise<{ id: string; title: string; body: string }[]> {
  const database = await createDatabase({ dataDir });
  try {
    return await database.db.selectFrom('documents').select(['id', 'title', 'body']).orderBy('id').execute();
  } finally {
    await database.close();
  }
}

const lines = (text: string) => text.split('\n').filter((line) => line.length > 0);

describe('npm run ingest', () => {
  it('skips a file over the size cap, one not UTF-8 and one the database refuses, with one warning each, and ingests the rest', async () => {
    const docs = folder('docs', {
      'plans/budget.md': '# Budget 2026\n\nThe budget is 12 000 euros.',
      'notes.txt': '\uFEFF회의록을 정리했습니다.',
      'big.md': Buffer.alloc(1.5 * 1024 * 1024, 'a'),
      'latin1.txt': Buffer.from('caf\u00e9 cr\u00e8me', 'latin1'),
      'refused.md': 'please refuse this document',
      '.obsidian/hidden.md': 'not a document',
      'photo.png': 'not a document either',
    });
    const run = await runScript('scripts/ingest.ts', [docs, '--data-dir', dataDir]);
    expect(run.code).toBe(0);
    expect(lines(run.stderr).sort()).toEqual([
      'ingest: skipped big.md: 1.5 MiB is over the limit of 1 MiB (--max-bytes)',
      'ingest: skipped latin1.txt: not valid UTF-8 text',
      'ingest: skipped refused.md: too many distinct words for the full-text index (SQLSTATE 54000)',
    ]);
    expect(run.stdout).toBe(`ingested 2 documents from ${docs}, skipped 3\n`);
    expect(await storedDocuments()).toEqual([
      { id: 'notes.txt', title: 'notes', body: '회의록을 정리했습니다.' },
      { id: 'plans/budget.md', title: 'Budget 2026', body: '# Budget 2026\n\nThe budget is 12 000 euros.' },
    ]);
  }, 120_000);

  it('takes the cap from --max-bytes', async () => {
    const docs = folder('small', { 'short.md': '# Short', 'long.md': `# Long\n${'x'.repeat(2_000)}` });
    const run = await runScript('scripts/ingest.ts', [docs, '--data-dir', dataDir, '--max-bytes', '1024']);
    expect(run).toMatchObject({
      code: 0,
      stderr: 'ingest: skipped long.md: 2 KiB is over the limit of 1 KiB (--max-bytes)\n',
      stdout: `ingested 1 document from ${docs}, skipped 1\n`,
    });
  }, 120_000);

  it('stops with one sentence and exit 1 for a missing folder, a file, or a database it cannot reach; migrate too', async () => {
    const docs = folder('reach', { 'a.md': '# A' });
    const unusedDataDir = join(dir, 'never-created');
    const configPath = join(dir, 'unreachable.json');
    writeFileSync(configPath, JSON.stringify({ database: { url: `postgres://switchboard@127.0.0.1:${await closedPort()}/x`, connectTimeoutMs: 1_000 } }));
    const [missing, file, unreachable, migrate, usage] = await Promise.all([
      runScript('scripts/ingest.ts', [join(dir, 'no-such-folder'), '--data-dir', unusedDataDir]),
      runScript('scripts/ingest.ts', [join(docs, 'a.md'), '--data-dir', unusedDataDir]),
      runScript('scripts/ingest.ts', [docs, '--config', configPath]),
      runScript('scripts/migrate.ts', ['--config', configPath]),
      runScript('scripts/ingest.ts', [docs, '--max-bytes', 'lots']),
    ]);
    expect(missing).toEqual({ code: 1, stdout: '', stderr: `ingest: ${join(dir, 'no-such-folder')} does not exist\n` });
    expect(file).toEqual({ code: 1, stdout: '', stderr: `ingest: ${join(docs, 'a.md')} is a file, not a folder: give the folder that holds the documents\n` });
    // Neither touched the database.
    expect(existsSync(unusedDataDir)).toBe(false);
    expect(unreachable).toEqual({
      code: 1,
      stdout: '',
      stderr: 'ingest: cannot open the database (PostgreSQL (database.url / DATABASE_URL)): the database is unavailable (ECONNREFUSED)\n',
    });
    expect(migrate).toEqual({
      code: 1,
      stdout: '',
      stderr: 'migrate: cannot open the database (PostgreSQL (database.url / DATABASE_URL)): the database is unavailable (ECONNREFUSED)\n',
    });
    expect(usage).toMatchObject({ code: 2, stderr: expect.stringMatching(/^usage: npm run ingest -- DIR .*--max-bytes N\]\n$/) });
  }, 120_000);
});

