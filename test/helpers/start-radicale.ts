/**
 * A real Radicale (Debian's 3.1.x, `/usr/bin/radicale` or `python3 -m radicale`) for the calendar tests:
 * a temp config on a free loopback port, htpasswd auth (plain) with one user, filesystem storage in a
 * temp folder. `createCalendar` makes a calendar (MKCALENDAR), `put` seeds an event, `storedEvents`
 * reads what Radicale holds on disk, `stop`/`start` take it down and bring it back on the same port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Radicale {
  /** `http://127.0.0.1:PORT/` */
  url: string;
  port: number;
  user: string;
  password: string;
  /** Makes a calendar `/USER/SLUG/` with a display name. */
  createCalendar(slug: string, displayName: string): Promise<void>;
  /** Writes one iCalendar object into a calendar. */
  put(slug: string, filename: string, icalendar: string): Promise<void>;
  /** The iCalendar texts stored in a calendar, read from Radicale's storage folder. */
  storedEvents(slug: string): string[];
  /** Starts the server again (same port, same storage) after {@link Radicale.stop}. */
  start(): Promise<void>;
  /** Stops the server and waits for it to exit. */
  stop(): Promise<void>;
  /** Stops the process where it stands (SIGSTOP): connections open, nothing answered. */
  freeze(): void;
  /** Lets a frozen process run again (SIGCONT). */
  thaw(): void;
  /** What Radicale logged since it last started (a line per request at its info level). */
  log(): string;
  /** Stops it and removes its folder. */
  close(): Promise<void>;
}

const USER = 'switchboard-test';
const PASSWORD = 'radicale-test-secret';

/** A port free on 127.0.0.1 right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Starts Radicale and resolves once it listens. */
export async function startRadicale(): Promise<Radicale> {
  const folder = mkdtempSync(join(tmpdir(), 'sb-radicale-'));
  const port = await freePort();
  const storage = join(folder, 'collections');
  writeFileSync(join(folder, 'users'), `${USER}:${PASSWORD}\n`);
  writeFileSync(
    join(folder, 'config'),
    [
      '[server]',
      `hosts = 127.0.0.1:${port}`,
      '[auth]',
      'type = htpasswd',
      `htpasswd_filename = ${join(folder, 'users')}`,
      'htpasswd_encryption = plain',
      'delay = 0',
      '[rights]',
      'type = owner_only',
      '[storage]',
      `filesystem_folder = ${storage}`,
      '[logging]',
      'level = info',
      'mask_passwords = True',
      '',
    ].join('\n'),
  );
  const command = existsSync('/usr/bin/radicale') ? ['/usr/bin/radicale'] : ['python3', '-m', 'radicale'];
  let child: ChildProcess | null = null;
  let output = '';

  const start = async (): Promise<void> => {
    output = '';
    const started = spawn(command[0]!, [...command.slice(1), '--config', join(folder, 'config')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        if (/Listening on/i.test(output) || /Radicale server ready/i.test(output)) resolve();
      };
      started.stdout?.on('data', onData);
      started.stderr?.on('data', onData);
      started.once('exit', (code) => reject(new Error(`radicale exited (${code}) before listening:\n${output}`)));
      started.once('error', reject);
    });
  };

  const stop = async (): Promise<void> => {
    const running = child;
    child = null;
    if (running === null || running.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill('SIGTERM');
    await exited;
  };

  const url = `http://127.0.0.1:${port}/`;
  const auth = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
  const request = async (method: string, path: string, body: string, contentType: string, expected: number[]): Promise<void> => {
    const response = await fetch(new URL(path, url), { method, body, headers: { authorization: auth, 'content-type': contentType } });
    const text = await response.text();
    if (!expected.includes(response.status)) throw new Error(`${method} ${path}: HTTP ${response.status}\n${text}`);
  };

  await start();
  return {
    url,
    port,
    user: USER,
    password: PASSWORD,
    start,
    stop,
    log: () => output,
    freeze: () => {
      (child as ChildProcess | null)?.kill('SIGSTOP');
    },
    thaw: () => {
      (child as ChildProcess | null)?.kill('SIGCONT');
    },
    async createCalendar(slug, displayName) {
      const body = `<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set><D:prop>
    <D:displayname>${displayName}</D:displayname>
    <C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set>
  </D:prop></D:set>
</C:mkcalendar>`;
      await request('MKCALENDAR', `/${USER}/${slug}/`, body, 'application/xml; charset=utf-8', [201]);
    },
    async put(slug, filename, icalendar) {
      await request('PUT', `/${USER}/${slug}/${filename}`, icalendar, 'text/calendar; charset=utf-8', [201, 204]);
    },
    storedEvents(slug) {
      const dir = join(storage, 'collection-root', USER, slug);
      if (!existsSync(dir)) return [];
      return readdirSync(dir)
        .filter((name) => name.endsWith('.ics'))
        .sort()
        .map((name) => readFileSync(join(dir, name), 'utf8'));
    },
    async close() {
      await stop();
      rmSync(folder, { recursive: true, force: true });
    },
  };
}
