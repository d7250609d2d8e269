import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { maskSecrets, MASK } from '../src/config/mask-secrets.js';
import { runScript } from './helpers/run-script.js';

/** The command lines a new user types first: each answers without starting anything or printing a stack. */

const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('npm start', () => {
  it('--help lists every option and the environment variables, and exits 0', async () => {
    const run = await runScript('src/main.ts', ['--help']);
    expect(run.code).toBe(0);
    for (const option of ['-c, --config PATH', '--print-config', '--inspect[=PORT]', '-h, --help', '-v, --version']) expect(run.stdout).toContain(option);
    for (const variable of ['DATABASE_URL', 'SWITCHBOARD_PORT', 'SWITCHBOARD_TOKEN', 'SYNOLOGY_TOKEN', 'LOG_LEVEL']) expect(run.stdout).toContain(variable);
    expect(run.stderr).toBe('');
  });

  it('--version and -v print the package version', async () => {
    for (const flag of ['--version', '-v']) {
      const run = await runScript('src/main.ts', [flag]);
      expect(run).toMatchObject({ code: 0, stdout: `switchboard ${version}\n` });
    }
  });

  it('refuses an unknown option or a missing value with one sentence and the usage, exit 2', async () => {
    const unknown = await runScript('src/main.ts', ['--confg', 'x.json']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.split('\n')[0]).toBe("switchboard: Unknown option '--confg'");
    expect(unknown.stderr).toContain('Usage: npm start');
    const missing = await runScript('src/main.ts', ['-c']);
    expect(missing.code).toBe(2);
    expect(missing.stderr.split('\n')[0]).toMatch(/^switchboard: Option '-c, --config <value>' argument missing$/);
  });

  it('--print-config (with -c) prints the effective config, defaults filled in, with every secret masked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-cli-'));
    const path = join(dir, 'my.json');
    writeFileSync(
      path,
      JSON.stringify({
        auth: { tokens: ['first-secret-token'] },
        database: { url: 'postgres://switchboard:db-password-1@127.0.0.1:5432/sb' },
        backends: { ollama: { baseUrl: 'http://127.0.0.1:11434/v1', model: 'qwen3:8b', apiKey: 'backend-key-2' } },
        synology: { token: 'synology-secret-3', incomingUrl: 'http://127.0.0.1:5000/webapi/entry.cgi' },
      }),
    );
    const run = await runScript('src/main.ts', ['-c', path, '--print-config']);
    expect(run.code).toBe(0);
    for (const secret of ['first-secret-token', 'db-password-1', 'backend-key-2', 'synology-secret-3']) expect(run.stdout).not.toContain(secret);
    const printed = JSON.parse(run.stdout) as Record<string, any>;
    expect(printed.auth.tokens).toEqual([MASK]);
    expect(printed.database.url).toBe(`postgres://switchboard:${MASK}@127.0.0.1:5432/sb`);
    expect(printed.backends.ollama).toMatchObject({ model: 'qwen3:8b', apiKey: MASK, concurrency: 1, timeoutMs: 120_000 });
    expect(printed.synology.token).toBe(MASK);
    expect(printed.roles).toEqual({ classifier: 'ollama', reasoner: 'ollama' });
    expect(printed.server).toEqual({ host: '127.0.0.1', port: 8787 });
  });

  it('masks secrets anywhere, keeps the names of variables that hold them and values that are not secrets', () => {
    expect(
      maskSecrets({
        tools: { email: { password: 'p', passwordEnv: 'MAIL_PASSWORD', host: 'imap.example.org' } },
        backends: { a: { apiKey: null, baseUrl: 'http://user:pw@127.0.0.1/v1' } },
      }),
    ).toEqual({
      tools: { email: { password: MASK, passwordEnv: 'MAIL_PASSWORD', host: 'imap.example.org' } },
      backends: { a: { apiKey: null, baseUrl: `http://user:${MASK}@127.0.0.1/v1` } },
    });
    // A Synology incoming webhook carries its token in the query.
    const incoming = 'https://nas.example.org/webapi/entry.cgi?api=SYNO.Chat.External&method=incoming&version=2&token=%22abc123%22';
    const masked = maskSecrets({ synology: { incomingUrl: incoming } }) as { synology: { incomingUrl: string } };
    expect(masked.synology.incomingUrl).not.toContain('abc123');
    expect(new URL(masked.synology.incomingUrl).searchParams.get('token')).toBe(MASK);
    expect(new URL(masked.synology.incomingUrl).searchParams.get('method')).toBe('incoming');
    expect(maskSecrets({ url: 'http://127.0.0.1/x?api_key=k1&q=1' })).toEqual({ url: `http://127.0.0.1/x?api_key=${encodeURIComponent(MASK)}&q=1` });
  });
});

describe('npm run migrate and npm run ingest', () => {
  for (const script of ['scripts/migrate.ts', 'scripts/ingest.ts']) {
    const name = script.includes('migrate') ? 'migrate' : 'ingest';
    it(`${name}: --help prints its usage and options, exit 0; an unknown option is one sentence and the usage, exit 2`, async () => {
      const help = await runScript(script, ['--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain(`Usage: npm run ${name}`);
      expect(help.stdout).toContain('--data-dir DIR');
      const wrong = await runScript(script, ['--datadir', 'x']);
      expect(wrong.code).toBe(2);
      expect(wrong.stderr.split('\n')[0]).toBe(`${name}: Unknown option '--datadir'`);
      expect(wrong.stderr).not.toMatch(/\n\s+at /);
    });
  }
});
