/**
 * One process per embedded database folder. PGlite has no lock of its own, and a second process on the
 * same folder does not fail cleanly: it aborts inside the WebAssembly (`Aborted()`) or waits forever. So
 * the folder holds `switchboard.lock`, created atomically (`open(…, 'wx')`) with the owner's pid and
 * start time, and removed when the owner closes the database or exits normally. A lock whose owner is
 * gone (kill -9, a crash, a power cut) is stale and taken over by the next process.
 */
import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SwitchboardError } from '../../errors.js';

/** The lock's file name inside the data folder (PGlite ignores files it does not know). */
export const LOCK_FILE = 'switchboard.lock';

/** Another live process holds the folder. The message is the one sentence a user sees. */
export class DataDirInUseError extends SwitchboardError {
  readonly code = 'data_dir_in_use';
  readonly retryable = false;
  constructor(
    /** The folder as configured (`./data`), for the message. */
    readonly dataDir: string,
    /** The process that holds it. */
    readonly pid: number,
  ) {
    super(
      'data_dir_in_use',
      `the database folder ${dataDir} is in use by another Switchboard process (pid ${pid}); stop it first, or use another database.dataDir`,
    );
  }
}

/** A held lock. */
export interface DataDirLock {
  /** The lock file. */
  readonly path: string;
  /** Removes the lock file if it is still ours; idempotent. */
  release(): void;
}

/** What the lock file says, as JSON. */
interface LockOwner {
  pid: number;
  /** When the owner took the lock (ISO 8601), for people reading the file. */
  startedAt: string;
  /** The owner's start time as the kernel counts it (`/proc/PID/stat`), to tell a reused pid apart. */
  processStart?: string;
}

/** A lock file still empty after this long was left by a process that died between create and write. */
const PARTIAL_GRACE_MS = 2_000;
/** A takeover guard older than this was left by a process that died while taking over. */
const TAKEOVER_GRACE_MS = 5_000;
const RETRY_MS = 25;
const MAX_ATTEMPTS = 200;

/** Lock files held by this process, with the exact text each holds (so we never remove another's). */
const held = new Map<string, string>();
let exitHookInstalled = false;

/**
 * Takes the lock of the data folder `dir` (which must exist). `shownAs` is how the folder is named in
 * the error (the configured path). Throws {@link DataDirInUseError} when a live process holds it —
 * this process included, so one process cannot open the same folder twice either.
 */
export async function lockDataDir(dir: string, shownAs: string = dir): Promise<DataDirLock> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (held.has(path)) throw new DataDirInUseError(shownAs, process.pid);
    const text = `${JSON.stringify(ownLock())}\n`;
    if (tryCreate(path, text)) {
      held.set(path, text);
      installExitHook();
      return { path, release: () => release(path, text) };
    }
    const found = readLock(path);
    if (found === 'gone') continue;
    if (found.owner === undefined) {
      // Created but not written yet — or written by a process that died in between.
      if (ageMs(path) < PARTIAL_GRACE_MS) {
        await sleep(RETRY_MS);
        continue;
      }
    } else if (isAlive(found.owner)) {
      throw new DataDirInUseError(shownAs, found.owner.pid);
    }
    if (!takeOver(path, found.text)) await sleep(RETRY_MS);
  }
  throw new Error(`could not take the lock ${path}: it keeps changing`);
}

function ownLock(): LockOwner {
  const processStart = processStartOf(process.pid);
  return {
    pid: process.pid,
    startedAt: new Date(Date.now() - process.uptime() * 1000).toISOString(),
    ...(processStart === undefined ? {} : { processStart }),
  };
}

/** Creates `path` with `text` unless it exists (atomic: `wx` is O_CREAT|O_EXCL). */
function tryCreate(path: string, text: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx');
  } catch (error) {
    if (codeOf(error) === 'EEXIST') return false;
    throw error;
  }
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  return true;
}

function readLock(path: string): 'gone' | { text: string; owner: LockOwner | undefined } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (codeOf(error) === 'ENOENT') return 'gone';
    throw error;
  }
  return { text, owner: parseOwner(text) };
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockOwner> | null;
    if (typeof value !== 'object' || value === null || !Number.isSafeInteger(value.pid) || (value.pid ?? 0) <= 0) return undefined;
    return {
      pid: value.pid as number,
      startedAt: String(value.startedAt),
      ...(typeof value.processStart === 'string' ? { processStart: value.processStart } : {}),
    };
  } catch {
    return undefined;
  }
}

/** Whether the lock's owner still runs (a pid the kernel reused for another program does not count). */
function isAlive(owner: LockOwner): boolean {
  // Not held by this process (checked first), so our own pid in the file is a former process's: after a
  // container restart the new process often gets the same small pid.
  if (owner.pid === process.pid) return false;
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    if (codeOf(error) !== 'EPERM') return false;
  }
  if (owner.processStart === undefined) return true;
  const start = processStartOf(owner.pid);
  return start === undefined || start === owner.processStart;
}

/**
 * Removes the stale lock whose text is `staleText`, under a guard file so that two processes taking
 * over at once cannot remove each other's fresh lock. Returns false when another process is taking over.
 */
function takeOver(path: string, staleText: string): boolean {
  const guard = `${path}.takeover`;
  if (!tryCreate(guard, String(process.pid))) {
    if (ageMs(guard) > TAKEOVER_GRACE_MS) unlinkQuietly(guard);
    return false;
  }
  try {
    const found = readLock(path);
    if (found !== 'gone' && found.text === staleText) unlinkQuietly(path);
  } finally {
    unlinkQuietly(guard);
  }
  return true;
}

function release(path: string, text: string): void {
  if (held.get(path) !== text) return;
  held.delete(path);
  const found = readLock(path);
  if (found !== 'gone' && found.text === text) unlinkQuietly(path);
}

/** A process that ends without closing its database (process.exit after a fatal error) still releases. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const [path, text] of [...held]) {
      try {
        release(path, text);
      } catch {
        // Exiting anyway: the next process finds the lock stale.
      }
    }
  });
}

/** Field 22 of `/proc/PID/stat` (start time in clock ticks since boot); undefined off Linux. */
function processStartOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if (codeOf(error) !== 'ENOENT') throw error;
  }
}

function codeOf(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
