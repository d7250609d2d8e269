/**
 * One process per embedded database folder (issue 9, item 5): real processes — the gateway
 * (`src/main.ts`), `scripts/migrate.ts`, `scripts/ingest.ts` — on real folders.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createDatabase } from '../src/actors/store/create-database.js';
import { DataDirInUseError, LOCK_FILE, lockDataDir, type DataDirLock } from '../src/actors/store/data-dir-lock.js';
import { childConfig, startChildGateway, type ChildGateway } from './helpers/child-gateway.js';
import { runScript } from './helpers/run-script.js';

const dirs: string[] = [];
const gateways: ChildGateway[] = [];
const locks: DataDirLock[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sb-lock-'));
  dirs.push(dir);
  return dir;
}

afterEach(() => {
  for (const lock of locks.splice(0)) lock.release();
});

afterAll(async () => {
  for (const gateway of gateways) await gateway.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Nothing listens on port 9 here: the backends are down, which a gateway starts with anyway. */
const NO_BACKEND = { baseUrl: 'http://127.0.0.1:9/v1' };

async function startGateway(dir: string): Promise<ChildGateway> {
  const gateway = await startChildGateway(dir, childConfig(dir, NO_BACKEND, NO_BACKEND));
  gateways.push(gateway);
  return gateway;
}

function lockOwner(dataDir: string): { pid: number } {
  return JSON.parse(readFileSync(join(dataDir, LOCK_FILE), 'utf8')) as { pid: number };
}

const inUse = (command: string, dataDir: string, pid: number) =>
  `${command}: the database folder ${dataDir} is in use by another Switchboard process (pid ${pid}); stop it first, or use another database.dataDir\n`;

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await once(child, 'exit');
  if (child.pid === undefined) throw new Error('no pid');
  return child.pid;
}

describe('one process per data folder', () => {
  it('beside a running gateway, npm start, npm run migrate and npm run ingest each say so in one sentence and exit 1; after a clean stop the folder is free', async () => {
    const dir = tempDir();
    const dataDir = join(dir, 'data');
    const docs = join(dir, 'docs');
    mkdirSync(docs);
    writeFileSync(join(docs, 'a.md'), '# A\nsome text');
    const first = await startGateway(dir);
    const pid = first.child.pid!;
    expect(lockOwner(dataDir).pid).toBe(pid);

    const [start, migrate, ingest] = await Promise.all([
      runScript('src/main.ts', ['--config', join(dir, 'switchboard.config.json')]),
      runScript('scripts/migrate.ts', ['--data-dir', dataDir]),
      runScript('scripts/ingest.ts', [docs, '--data-dir', dataDir]),
    ]);
    expect(start).toMatchObject({ code: 1, stderr: inUse('switchboard', dataDir, pid) });
    expect(migrate).toMatchObject({ code: 1, stderr: inUse('migrate', dataDir, pid), stdout: '' });
    expect(ingest).toMatchObject({ code: 1, stderr: inUse('ingest', dataDir, pid), stdout: '' });

    // The first gateway never noticed.
    expect(await (await fetch(`${first.url}/healthz`)).json()).toEqual({ ok: true });
    expect(await first.kill('SIGTERM')).toBe(0);
    expect(existsSync(join(dataDir, LOCK_FILE))).toBe(false);
    expect(await runScript('test/helpers/hold-data-dir.ts', [dataDir])).toMatchObject({ code: 0, stdout: 'locked\n' });
  }, 120_000);

  it('kill -9 leaves a stale lock that the next start takes over', async () => {
    const dir = tempDir();
    const dataDir = join(dir, 'data');
    const first = await startGateway(dir);
    expect(await first.kill('SIGKILL')).toBe(null);
    expect(lockOwner(dataDir).pid).toBe(first.child.pid);

    const second = await startGateway(dir);
    expect(lockOwner(dataDir).pid).toBe(second.child.pid);
    expect(await (await fetch(`${second.url}/healthz`)).json()).toEqual({ ok: true });
    expect(await second.kill('SIGTERM')).toBe(0);
    expect(existsSync(join(dataDir, LOCK_FILE))).toBe(false);
  }, 120_000);

  it('of several processes taking over one stale lock at once, exactly one gets it', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: await deadPid(), startedAt: new Date().toISOString() }));
    const at = Date.now() + 2_500;
    const runs = await Promise.all(
      Array.from({ length: 4 }, () => runScript('test/helpers/hold-data-dir.ts', [dir, '1500', String(at)])),
    );
    const outputs = runs.map((run) => run.stdout);
    expect(runs.map((run) => run.code)).toEqual([0, 0, 0, 0]);
    expect(outputs.filter((output) => output === 'locked\n')).toHaveLength(1);
    expect(outputs.filter((output) => /is in use by another Switchboard process \(pid \d+\)/.test(output))).toHaveLength(3);
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  }, 30_000);
});

describe('the lock file', () => {
  it('is refused while its owner lives: another process, or this one', async () => {
    const dir = tempDir();
    // The test runner that started this worker is alive.
    const planted = JSON.stringify({ pid: process.ppid, startedAt: new Date().toISOString() });
    writeFileSync(join(dir, LOCK_FILE), planted);
    const refused = await lockDataDir(dir, './data').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(DataDirInUseError);
    expect(refused).toMatchObject({ pid: process.ppid, reason: 'data_dir_in_use' });
    expect((refused as Error).message).toBe(
      `the database folder ./data is in use by another Switchboard process (pid ${process.ppid}); stop it first, or use another database.dataDir`,
    );
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toBe(planted);

    const own = tempDir();
    const lock = await lockDataDir(own);
    locks.push(lock);
    await expect(lockDataDir(own)).rejects.toMatchObject({ pid: process.pid });
    lock.release();
    lock.release();
    locks.push(await lockDataDir(own));
  });

  it('is taken over when its owner is gone: a dead pid, a pid now used by another program, our own pid from a former run, or never written', async () => {
    const stale = [
      { pid: await deadPid(), startedAt: '2020-01-01T00:00:00.000Z' },
      // Alive, but started at another time than the lock's owner: the kernel gave the pid to someone else.
      { pid: process.ppid, startedAt: '2020-01-01T00:00:00.000Z', processStart: '1' },
      // After a container restart the new process often gets the old one's pid.
      { pid: process.pid, startedAt: '2020-01-01T00:00:00.000Z' },
    ];
    for (const owner of stale) {
      const dir = tempDir();
      writeFileSync(join(dir, LOCK_FILE), JSON.stringify(owner));
      const lock = await lockDataDir(dir);
      expect(lockOwner(dir).pid, JSON.stringify(owner)).toBe(process.pid);
      lock.release();
      expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    }

    // Created but never written by a process that died in between: left alone for a moment, then taken.
    const dir = tempDir();
    writeFileSync(join(dir, LOCK_FILE), '');
    const old = new Date(Date.now() - 10_000);
    utimesSync(join(dir, LOCK_FILE), old, old);
    locks.push(await lockDataDir(dir));
    expect(lockOwner(dir).pid).toBe(process.pid);
  });

  it('is not taken for PostgreSQL or memory://', async () => {
    const dir = tempDir();
    const memory = await createDatabase({ dataDir: 'memory://' });
    await memory.close();
    expect(existsSync('memory:')).toBe(false);
    const url = process.env['TEST_DATABASE_URL'];
    if (url) {
      const postgres = await createDatabase({ url, dataDir: join(dir, 'unused') });
      await postgres.close();
      expect(existsSync(join(dir, 'unused'))).toBe(false);
    }
  }, 60_000); // PGlite, even in memory, takes seconds to open on a busy machine
});
