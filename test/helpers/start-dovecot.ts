/**
 * A throwaway Dovecot IMAP server for one test file: `dovecot -F -c <temp config>` on a free port of
 * 127.0.0.1, plain IMAP (no TLS, loopback only), maildirs in a temporary directory and one user from a
 * passwd-file. It can be stopped and started again on the same port (the mail stays), and messages are
 * seeded with IMAP APPEND with explicit internal dates, so a date window is deterministic.
 *
 * Dovecot runs as root here and drops to the unprivileged `dovenull`/mail users itself. When the binary
 * is missing a suite skips locally and fails in CI (`CI=true`), as the PostgreSQL cluster helper does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { closedPort } from './closed-port.js';

export const DOVECOT_BINARY = '/usr/sbin/dovecot';

/** Whether a suite needing {@link startDovecot} should run, skip, or fail. */
export function dovecotAvailability(): 'run' | 'skip' | 'fail' {
  if (existsSync(DOVECOT_BINARY)) return 'run';
  return process.env['CI'] === 'true' ? 'fail' : 'skip';
}

/** One message to seed. */
export interface SeedMessage {
  /** The whole RFC 5322 message, CRLF or LF line ends. */
  raw: string;
  /** The IMAP internal date (arrival time). */
  date: Date;
  /** Folder; default INBOX (created when missing). */
  folder?: string;
}

export interface Dovecot {
  readonly port: number;
  readonly url: string;
  readonly user: string;
  readonly password: string;
  /** APPENDs messages, returning their uids in order. */
  seed(messages: readonly SeedMessage[]): Promise<number[]>;
  /** Stops the server (SIGTERM, waits for the master to exit): connections are closed, then refused. */
  stop(): Promise<void>;
  /** Freezes every Dovecot process (SIGSTOP to its group): connections stay open, nothing answers. */
  pause(): void;
  /** Lets them run again (SIGCONT). */
  resume(): void;
  /** Starts it again on the same port with the same mail (nothing when it runs). */
  start(): Promise<void>;
  /** The server's log, for messages when something goes wrong. */
  log(): string;
  /** Stops it and removes its directory. Idempotent. */
  destroy(): Promise<void>;
}

/** Starts a Dovecot with one user (`alice`, a random password) on a free loopback port. */
export async function startDovecot(): Promise<Dovecot> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-dovecot-'));
  // Dovecot's auth process (user `dovecot`) reads the passwd-file: the folder must be searchable.
  chmodSync(dir, 0o755);
  const port = await closedPort();
  const user = 'alice';
  const password = `pw-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}`;
  const asRoot = process.getuid?.() === 0;
  // As root the mail belongs to `dovenull`'s uid (Dovecot refuses uid 0); otherwise to the test's own user.
  const mailUid = asRoot ? uidOf('dovenull') : userInfo().uid;
  const mailGid = asRoot ? gidOf('dovenull') : userInfo().gid;
  const mailDir = join(dir, 'mail');
  mkdirSync(mailDir);
  if (asRoot) chownSync(mailDir, mailUid, mailGid);
  const logFile = join(dir, 'dovecot.log');
  writeFileSync(join(dir, 'passwd'), `${user}:{PLAIN}${password}:${mailUid}:${mailGid}::${mailDir}/${user}\n`);
  const config = `
protocols = imap
listen = 127.0.0.1
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${logFile}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# A refused login is answered at once (tests try wrong passwords on purpose).
auth_failure_delay = 0
first_valid_uid = ${Math.min(mailUid, 100)}
mail_location = maildir:${mailDir}/%u
passdb {
  driver = passwd-file
  args = scheme=PLAIN ${dir}/passwd
}
userdb {
  driver = passwd-file
  args = ${dir}/passwd
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
# No growing delay for logins from an address that failed one (Dovecot's documented way to turn it off).
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
}
`;
  const configFile = join(dir, 'dovecot.conf');
  writeFileSync(configFile, config);
  let child: ChildProcess | null = null;

  const start = async (): Promise<void> => {
    if (child !== null && child.exitCode === null && child.signalCode === null) return;
    // Its own process group: stopping it ends the sessions (imap processes) too, not only the master.
    const proc = spawn(DOVECOT_BINARY, ['-F', '-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    proc.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child = proc;
    const exited = once(proc, 'exit').then(() => {
      throw new Error(`dovecot exited at start: ${stderr}\n${readLog()}`);
    });
    // Ready when the IMAP greeting arrives: poll the port until it does (or the process dies).
    await Promise.race([waitForGreeting(port, () => proc.exitCode !== null), exited]);
    exited.catch(() => undefined);
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = null;
    if (proc === null || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGTERM');
    await exited;
    // The master is gone; its session processes may still be serving connections. End them, and wait
    // until none is left, so a client's next command finds the server really down.
    const group = proc.pid;
    if (group !== undefined) {
      try {
        process.kill(-group, 'SIGKILL');
      } catch {
        // No process left in the group.
      }
      while (liveMembers(group) > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };

  const signalGroup = (signal: NodeJS.Signals): void => {
    const group = child?.pid;
    if (group === undefined) throw new Error('dovecot is not running');
    process.kill(-group, signal);
  };

  const readLog = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  const url = `imap://127.0.0.1:${port}`;

  const seed = async (messages: readonly SeedMessage[]): Promise<number[]> => {
    const client = new ImapFlow({ host: '127.0.0.1', port, secure: false, auth: { user, pass: password }, logger: false });
    await client.connect();
    const uids: number[] = [];
    try {
      const folders = new Set((await client.list()).map((box) => box.path));
      for (const message of messages) {
        const folder = message.folder ?? 'INBOX';
        if (!folders.has(folder)) {
          await client.mailboxCreate(folder);
          folders.add(folder);
        }
        const raw = message.raw.replace(/\r?\n/g, '\r\n');
        const appended = await client.append(folder, raw, [], message.date);
        if (!appended || appended.uid === undefined) throw new Error('APPEND returned no uid (UIDPLUS)');
        uids.push(appended.uid);
      }
    } finally {
      await client.logout();
    }
    return uids;
  };

  let destroyed = false;
  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    await stop();
    rmSync(dir, { recursive: true, force: true });
  };

  await start();
  return {
    port,
    url,
    user,
    password,
    seed,
    stop,
    start,
    pause: () => signalGroup('SIGSTOP'),
    resume: () => signalGroup('SIGCONT'),
    log: readLog,
    destroy: async () => {
      if (child !== null && child.exitCode === null) signalGroup('SIGCONT');
      await destroy();
    },
  };
}

function passwdField(name: string, field: 2 | 3): number {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((entry) => entry.startsWith(`${name}:`));
  if (line === undefined) throw new Error(`no user ${name} in /etc/passwd (install dovecot-imapd)`);
  return Number(line.split(':')[field]);
}

const uidOf = (name: string): number => passwdField(name, 2);
const gidOf = (name: string): number => passwdField(name, 3);

/** Processes of process group `group` that are still running (zombies do not count). */
function liveMembers(group: number): number {
  let count = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses, so read after the last ')'.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === group && state !== 'Z' && state !== 'X') count += 1;
  }
  return count;
}

/** Resolves once a connection to `port` reads an IMAP greeting; retries while the port refuses. */
async function waitForGreeting(port: number, gaveUp: () => boolean): Promise<void> {
  for (;;) {
    if (gaveUp()) return;
    const greeted = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('data', (data) => {
        socket.destroy();
        resolve(data.toString().startsWith('* OK'));
      });
      socket.once('error', () => resolve(false));
      socket.once('close', () => resolve(false));
    });
    if (greeted) return;
    // The listener is not up yet: try again on the next turn of the event loop after a short pause.
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
