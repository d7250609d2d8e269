/**
 * The gateway's one connection to its CalDAV server, through tsdav: discovered once (principal, home,
 * the calendar), reused by every call, discovered again after a failure, closed when the runtime stops.
 * tsdav speaks through the fetch given here — undici's, on one keep-alive agent — which refuses any host
 * outside `egress.allowHosts` (a discovery redirect included) and never follows redirects by itself.
 */
import { Agent, fetch as undiciFetch } from 'undici';
import { createAccount, createCalendarObject, fetchCalendarObjects, fetchCalendars, type DAVAccount, type DAVCalendar } from 'tsdav';
import type { Config } from '../../config/config-schema.js';
import { hostAllowed } from '../../config/load-config.js';

/** The calendar settings (`tools.calendar`, not null). */
export type CalendarSettings = NonNullable<Config['tools']['calendar']>;

/**
 * A calendar call that failed, with a cause in words for the user and the log (`connection refused`,
 * `HTTP 401 (the server refused the user name or password)`); never a URL with credentials, a header
 * or a stack.
 */
export class CalendarServerError extends Error {
  override readonly name = 'CalendarServerError';
  constructor(readonly detail: string) {
    super(`calendar server: ${detail}`);
  }
}

/** What the calendar tool needs from the server. */
export interface CalendarConnection {
  /** The iCalendar text of every object with an event in [start, end). */
  objectsBetween(start: Date, end: Date, signal: AbortSignal): Promise<string[]>;
  /** Writes a new object `filename` (`UID.ics`) into the calendar; one already there is left as it is. */
  create(filename: string, icalendar: string, signal: AbortSignal): Promise<void>;
  /** Closes the connections; later calls fail. */
  close(): Promise<void>;
}

export interface CalendarConnectionOptions {
  allowHosts: readonly string[];
  /** Where `passwordEnv` is read (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** Told which calendar is used when the config names none (once per discovery). */
  onNotice?: (message: string) => void;
  /** Limit for opening a TCP connection (default 5000 ms). */
  connectTimeoutMs?: number;
}

/** A multistatus document that ends where it should: its closing tag, or an empty element (any namespace prefix). */
const WHOLE_MULTISTATUS = /(?:<\/(?:[\w.-]+:)?multistatus\s*>|<(?:[\w.-]+:)?multistatus\b[^<>]*\/>)\s*$/;

/** A discovery (principal, home, calendars) that takes longer is given up. */
const DISCOVERY_TIMEOUT_MS = 10_000;

interface Discovered {
  account: DAVAccount;
  calendar: DAVCalendar;
}

interface PendingDiscovery {
  promise: Promise<Discovered>;
  controller: AbortController;
  /** Calls waiting for it now. */
  waiters: number;
}

/** Builds the connection; nothing is sent until the first call. */
export function createCalDavConnection(settings: CalendarSettings, options: CalendarConnectionOptions): CalendarConnection {
  const agent = new Agent({ connect: { timeout: options.connectTimeoutMs ?? 5_000 }, keepAliveTimeout: 30_000 });
  let closed = false;
  let discovery: PendingDiscovery | null = null;

  const password = (): string => {
    if (settings.password !== undefined) return settings.password;
    const value = (options.env ?? process.env)[settings.passwordEnv ?? ''];
    if (value === undefined || value === '') {
      throw new CalendarServerError(`the environment variable ${settings.passwordEnv} (tools.calendar.passwordEnv) is not set`);
    }
    return value;
  };
  const headers = (): Record<string, string> => ({
    authorization: `Basic ${Buffer.from(`${settings.user}:${password()}`).toString('base64')}`,
  });

  /** tsdav's fetch: only allowed hosts, no redirects followed, this agent, and failures in words. */
  const guardedFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    if (closed) throw new CalendarServerError('the gateway is shutting down');
    const target = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    if (!hostAllowed(target.hostname, options.allowHosts)) {
      throw new CalendarServerError(`host "${target.hostname}" is not in egress.allowHosts`);
    }
    let response: Awaited<ReturnType<typeof undiciFetch>>;
    try {
      response = await undiciFetch(target, {
        ...(init as Parameters<typeof undiciFetch>[1]),
        redirect: 'manual',
        dispatcher: agent,
      });
    } catch (error) {
      if (init?.signal?.aborted) throw init.signal.reason ?? error;
      throw new CalendarServerError(describeFetchFailure(error));
    }
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      throw new CalendarServerError(`HTTP ${response.status} (the server refused the user name or password)`);
    }
    if (response.status >= 500) {
      await response.body?.cancel();
      throw new CalendarServerError(`HTTP ${response.status} (a server error)`);
    }
    if (response.status === 207) {
      // tsdav reads any 207 body as a list, and a cut or garbled one as an empty list: "no events today"
      // for a server that failed. Only a whole multistatus document reaches it.
      let text: string;
      try {
        text = await response.text();
      } catch (error) {
        if (init?.signal?.aborted) throw init.signal.reason ?? error;
        throw new CalendarServerError(describeFetchFailure(error));
      }
      if (!WHOLE_MULTISTATUS.test(text)) throw new CalendarServerError('an answer that is not a whole multistatus document');
      return new Response(text, { status: 207, headers: Object.fromEntries(response.headers.entries()) });
    }
    return response as unknown as Response;
  };
  const fetch = guardedFetch as unknown as typeof globalThis.fetch;

  const discover = async (signal: AbortSignal): Promise<Discovered> => {
    const account = await createAccount({
      account: { serverUrl: settings.url, accountType: 'caldav' },
      headers: headers(),
      fetchOptions: { signal },
      fetch,
    });
    const calendars = await fetchCalendars({ account, headers: headers(), fetchOptions: { signal }, fetch });
    const usable = calendars.filter((calendar) => calendar.components === undefined || calendar.components.includes('VEVENT'));
    if (usable.length === 0) throw new CalendarServerError(`the user ${settings.user} has no calendar`);
    // The URL may be a calendar's own (DESIGN §3: "collection or principal URL"): then that is the one.
    const atUrl = usable.find((calendar) => sameUrl(calendar.url, settings.url));
    if (settings.calendar === undefined && atUrl !== undefined) return { account, calendar: atUrl };
    if (settings.calendar === undefined) {
      const first = usable[0]!;
      options.onNotice?.(`tools.calendar.calendar is not set: using the first calendar, "${nameOf(first)}"`);
      return { account, calendar: first };
    }
    const wanted = settings.calendar;
    const found = usable.find((calendar) => nameOf(calendar) === wanted || lastSegment(calendar.url) === wanted);
    if (found === undefined) {
      const names = usable.map((calendar) => `"${nameOf(calendar)}"`).join(', ');
      throw new CalendarServerError(`no calendar "${wanted}" (the user has ${names})`);
    }
    return { account, calendar: found };
  };

  /**
   * The discovery, shared by concurrent calls. It has its own signal: it is aborted when every call
   * waiting for it has been (or after its own time limit), not when the first of them is. A failed one
   * is forgotten, so the next call starts over.
   */
  const discovered = (): PendingDiscovery => {
    if (discovery !== null) return discovery;
    const controller = new AbortController();
    const promise = discover(AbortSignal.any([controller.signal, AbortSignal.timeout(DISCOVERY_TIMEOUT_MS)]));
    const pending: PendingDiscovery = { promise, controller, waiters: 0 };
    discovery = pending;
    promise.catch(() => {
      if (discovery === pending) discovery = null;
    });
    return pending;
  };

  /** Runs `work` with the discovered calendar; any failure forgets the discovery, so the next call starts over. */
  const withCalendar = async <T>(signal: AbortSignal, work: (calendar: DAVCalendar) => Promise<T>): Promise<T> => {
    const current = discovered();
    try {
      current.waiters += 1;
      let found: Discovered;
      try {
        found = await untilAborted(current.promise, signal);
      } finally {
        current.waiters -= 1;
        if (signal.aborted && current.waiters === 0) current.controller.abort(signal.reason);
      }
      return await work(found.calendar);
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error;
      if (discovery === current) discovery = null;
      if (error instanceof CalendarServerError) throw error;
      // tsdav's own errors ("cannot find principalUrl", a parse failure) are about the server's answers.
      throw new CalendarServerError(`an unexpected answer (${error instanceof Error ? error.message.slice(0, 120) : 'unknown'})`);
    }
  };

  return {
    objectsBetween: (start, end, signal) =>
      withCalendar(signal, async (calendar) => {
        const objects = await fetchCalendarObjects({
          calendar,
          timeRange: { start: start.toISOString(), end: end.toISOString() },
          headers: headers(),
          fetchOptions: { signal },
          fetch,
        });
        return objects.map((object) => (typeof object.data === 'string' ? object.data : '')).filter((data) => data !== '');
      }),

    create: (filename, icalendar, signal) =>
      withCalendar(signal, async (calendar) => {
        const response = await createCalendarObject({
          calendar,
          filename,
          iCalString: icalendar,
          headers: { ...headers(), 'if-none-match': '*' },
          fetchOptions: { signal },
          fetch,
        });
        // 412 to If-None-Match: an object of this UID is there already — an earlier yes wrote it.
        if (!response.ok && response.status !== 412) throw new CalendarServerError(`HTTP ${response.status} when writing the event`);
      }),

    async close() {
      closed = true;
      discovery = null;
      await agent.close();
    },
  };
}

/** `promise`, or a rejection as soon as `signal` aborts (the work behind the promise goes on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** Two URLs naming the same collection (a trailing slash and percent-encoding aside). */
function sameUrl(a: string, b: string): boolean {
  try {
    const normal = (value: string): string => {
      const url = new URL(value);
      return `${url.host}${decodeURIComponent(url.pathname).replace(/\/+$/, '')}`;
    };
    return normal(a) === normal(b);
  } catch {
    return false;
  }
}

function nameOf(calendar: DAVCalendar): string {
  const name = calendar.displayName;
  return typeof name === 'string' && name !== '' ? name : lastSegment(calendar.url);
}

function lastSegment(url: string): string {
  return decodeURIComponent(url.replace(/\/+$/, '').split('/').at(-1) ?? '');
}

/** undici's `fetch failed` with its cause in words: `connection refused (ECONNREFUSED)`. */
function describeFetchFailure(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; name?: unknown } } | null)?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : undefined;
  const words: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
    ENOTFOUND: 'host not found',
    EAI_AGAIN: 'host not found',
    ETIMEDOUT: 'connection timed out',
    UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
    UND_ERR_SOCKET: 'connection closed by the server',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
  };
  if (code !== undefined) return `unreachable (${words[code] ?? 'network error'}, ${code})`;
  return 'unreachable (network error)';
}
