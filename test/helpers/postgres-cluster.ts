/**
 * A throwaway PostgreSQL cluster that one test file owns, for tests that break the server on purpose:
 * pause it (SIGSTOP), stop it, start it again on the same port. The shared CI server
 * (`TEST_DATABASE_URL`, started by `.ci/postgres.sh`) must never be used for that: other test files
 * run against it at the same time.
 *
 * The binaries are found the way `.ci/postgres.sh` finds them (newest `/usr/lib/postgresql/N/bin`,
 * else `pg_ctl` on the PATH). PostgreSQL refuses to run as root, so as root every server command runs
 * as the `postgres` user (`runuser -u postgres --`), which `.ci/postgres.sh` creates in CI. When the
 * binaries are missing a suite skips locally and fails in CI (`CI=true`), as `databases.ts` does for
 * `TEST_DATABASE_URL`.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, chownSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Why a suite that needs a cluster of its own cannot have one. */
export const POSTGRES_BINARIES_MISSING =
  'PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found in /usr/lib/postgresql/*/bin or on the PATH; ' +
  'install postgresql (.ci/postgres.sh does) to run the store outage tests';

/** The directory holding `initdb`, `pg_ctl` and `postgres`, newest major version first; null when absent. */
export function postgresBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((name) => /^\d+(\.\d+)?$/.test(name))
        .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a))
    : [];
  const candidates = versions.map((version) => join(root, version, 'bin'));
  for (const dir of (process.env['PATH'] ?? '').split(':')) if (dir !== '') candidates.push(dir);
  return candidates.find((dir) => ['initdb', 'pg_ctl', 'postgres'].every((tool) => existsSync(join(dir, tool)))) ?? null;
}

/**
 * Whether a suite needing {@link startPostgresCluster} should run, skip, or fail: `run` with the binaries,
 * `skip` without them locally, `fail` without them in CI.
 */
export function postgresClusterAvailability(): 'run' | 'skip' | 'fail' {
  if (postgresBinDir() !== null) return 'run';
  return process.env['CI'] === 'true' ? 'fail' : 'skip';
}

/** A running cluster of one test file. */
export interface PostgresCluster {
  /** `postgres://postgres@127.0.0.1:PORT/postgres` (trust authentication). */
  readonly url: string;
  readonly port: number;
  /** The server log, for messages when something goes wrong. */
  readonly logFile: string;
  /** Freezes the postmaster and every one of its processes (SIGSTOP): connections stay open, nothing answers. */
  pause(): Promise<void>;
  /** Lets the processes {@link pause} froze run again (SIGCONT). */
  resume(): Promise<void>;
  /** `pg_ctl stop -m fast`: sessions are ended, connections refused until {@link start}. */
  stop(): Promise<void>;
  /** Starts the stopped server again, on the same port. */
  start(): Promise<void>;
  /** The last lines of the server log. */
  logTail(lines?: number): string;
  /** Resumes, stops (immediately) and removes the cluster's directory. Idempotent. */
  destroy(): Promise<void>;
}

/** Initialises a cluster in a temporary directory and starts it on a free port of 127.0.0.1. */
export async function startPostgresCluster(): Promise<PostgresCluster> {
  const bin = postgresBinDir();
  if (bin === null) throw new Error(POSTGRES_BINARIES_MISSING);
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'sb-pgcluster-'));
  const dataDir = join(dir, 'data');
  const socketDir = join(dir, 'socket');
  const logFile = join(dir, 'server.log');
  mkdirSync(socketDir);
  if (asRoot) {
    const { uid, gid } = await postgresUser();
    for (const path of [dir, socketDir]) chownSync(path, uid, gid);
  }

  /** Runs a server tool, as the `postgres` user when we are root. */
  const tool = async (name: string, args: string[]): Promise<void> => {
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, name), ...args]] : [join(bin, name), args];
    try {
      // cwd: a directory the postgres user may enter (it cannot enter the test's working directory everywhere).
      await run(file, argv, { cwd: dir, timeout: 90_000 });
    } catch (error) {
      const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
      throw new Error(`${name} ${args.join(' ')} failed: ${String(error)}\n${stdout}${stderr}\n${tail(logFile, 30)}`, { cause: error });
    }
  };

  await tool('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync']);

  let port = 0;
  const startOn = (candidate: number) =>
    tool('pg_ctl', [
      '-D',
      dataDir,
      '-l',
      logFile,
      '-w',
      '-t',
      '60',
      '-o',
      `-c listen_addresses=127.0.0.1 -p ${candidate} -k ${socketDir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off`,
      'start',
    ]);
  // A free port may be taken between the check and the start: try a few.
  for (let attempt = 1; ; attempt++) {
    const candidate = await freePort();
    try {
      await startOn(candidate);
      port = candidate;
      break;
    } catch (error) {
      if (attempt >= 5) {
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }

  /** The processes {@link PostgresCluster.pause} stopped; empty when not paused. */
  let frozen: number[] = [];
  let destroyed = false;

  const postmasterPid = (): number => {
    const first = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n', 1)[0] ?? '';
    const pid = Number.parseInt(first, 10);
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no postmaster pid in ${dataDir}/postmaster.pid`);
    return pid;
  };

  const cluster: PostgresCluster = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    logFile,
    async pause() {
      if (frozen.length > 0) throw new Error('the cluster is already paused');
      const postmaster = postmasterPid();
      // The postmaster first, so it forks no new backend while its children are being stopped.
      process.kill(postmaster, 'SIGSTOP');
      frozen = [postmaster];
      for (const child of await childrenOf(postmaster)) {
        try {
          process.kill(child, 'SIGSTOP');
          frozen.push(child);
        } catch {
          // It exited between the listing and the signal.
        }
      }
    },
    async resume() {
      // Children first: the postmaster wakes to a cluster that runs.
      for (const pid of frozen.slice(1).concat(frozen.slice(0, 1))) {
        try {
          process.kill(pid, 'SIGCONT');
        } catch {
          // Gone.
        }
      }
      frozen = [];
    },
    async stop() {
      await tool('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', '-t', '60', 'stop']);
    },
    async start() {
      await startOn(port);
    },
    logTail: (lines = 30) => tail(logFile, lines),
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await cluster.resume();
      await tool('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', '-t', '30', 'stop']).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}

/** The pids whose parent is `pid`, read from /proc (no procps needed). */
async function childrenOf(pid: number): Promise<number[]> {
  const children: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    // /proc/PID/stat: "pid (comm) state ppid …"; comm may hold spaces and parentheses, so read after the last ')'.
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const ppid = Number.parseInt(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] ?? '', 10);
    if (ppid === pid) children.push(Number.parseInt(entry, 10));
  }
  return children;
}

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  try {
    const [{ stdout: uid }, { stdout: gid }] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
    return { uid: Number.parseInt(uid, 10), gid: Number.parseInt(gid, 10) };
  } catch (error) {
    throw new Error('running as root, but there is no `postgres` user to run the server as (.ci/postgres.sh creates it)', { cause: error });
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
