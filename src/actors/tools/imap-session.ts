/**
 * One IMAP connection per gateway for the email tool: opened on first use, shared by every call (IMAP
 * mailbox locks queue the calls on it), opened again on the next use after it drops, closed when the
 * runtime stops.
 *
 * Calls are cancelled with their AbortSignal. An IMAP command cannot be taken back, and a server that
 * stopped answering holds the connection (and every call queued behind it) forever, so an abort closes
 * the connection: the call ends at once, other calls on it fail, and the next use connects again.
 */
import { ImapFlow } from 'imapflow';
import { isIP } from 'node:net';

/** Where and how to log in. */
export interface ImapSettings {
  /** `imap://host:port` or `imaps://host:port`. */
  url: string;
  user: string;
  /** Read when connecting (a password from `passwordEnv` is looked up then). */
  password: () => string;
  /** Check the server's certificate (imaps, STARTTLS). */
  rejectUnauthorized: boolean;
  /** Limit for the TCP connection and the greeting, in ms. */
  connectTimeoutMs?: number;
}

/** Why a connection could not be used, as the email tool reports it. */
export class ImapSessionError extends Error {
  readonly kind: 'unreachable' | 'login_refused' | 'dropped' | 'aborted';
  constructor(kind: ImapSessionError['kind'], detail: string, options?: { cause?: unknown }) {
    super(detail, options);
    this.name = 'ImapSessionError';
    this.kind = kind;
  }
}

export interface ImapSession {
  /** Runs `work` on the shared connection (opening it first if needed); `signal` aborts it. */
  use<T>(signal: AbortSignal, work: (client: ImapFlow) => Promise<T>): Promise<T>;
  /** Logs out (or drops the socket) and stops reconnecting. */
  close(): Promise<void>;
}

/** Host, port and whether TLS starts at once, from the URL. */
export function imapEndpoint(url: string): { host: string; port: number; secure: boolean } {
  const parsed = new URL(url);
  const secure = parsed.protocol === 'imaps:';
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  const port = parsed.port === '' ? (secure ? 993 : 143) : Number(parsed.port);
  return { host, port, secure };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

export function createImapSession(settings: ImapSettings): ImapSession {
  const { host, port, secure } = imapEndpoint(settings.url);
  const where = `${host}:${port}`;
  let current: ImapFlow | null = null;
  let connecting: Promise<ImapFlow> | null = null;
  /** The client being connected, so an abort can end a connect that hangs (a silent server). */
  let opening: ImapFlow | null = null;
  let closed = false;

  const open = async (): Promise<ImapFlow> => {
    const client = new ImapFlow({
      host,
      port,
      secure,
      // imap:// to another host must upgrade with STARTTLS: a password is never sent in clear text
      // beyond this machine. On loopback the upgrade is used when the server offers it.
      ...(secure || isLoopback(host) ? {} : { doSTARTTLS: true }),
      auth: { user: settings.user, pass: settings.password() },
      tls: { rejectUnauthorized: settings.rejectUnauthorized },
      logger: false,
      connectionTimeout: settings.connectTimeoutMs ?? 10_000,
      greetingTimeout: settings.connectTimeoutMs ?? 10_000,
      disableAutoIdle: true,
    });
    // Without a listener an 'error' event would be an uncaught exception: a dropped connection is
    // noticed by 'close' and by the failing command instead.
    client.on('error', () => undefined);
    client.on('close', () => {
      if (current === client) current = null;
    });
    opening = client;
    try {
      await client.connect();
    } catch (error) {
      client.close();
      throw describeConnectError(error, where);
    } finally {
      opening = null;
    }
    // SINCE is sent as a date, not as WITHIN's "seconds before the library's own clock": the window is
    // measured from the clock the tool is given (tests fix it), and filtered exactly afterwards.
    client.capabilities.delete('WITHIN');
    return client;
  };

  const connection = async (): Promise<ImapFlow> => {
    if (current !== null && current.usable) return current;
    if (connecting === null) {
      connecting = open().then(
        (client) => {
          connecting = null;
          if (closed) {
            client.close();
            throw new ImapSessionError('aborted', 'the email tool is closed');
          }
          current = client;
          return client;
        },
        (error: unknown) => {
          connecting = null;
          throw error;
        },
      );
    }
    return connecting;
  };

  const drop = (): void => {
    const client = current;
    current = null;
    client?.close();
    opening?.close();
  };

  return {
    async use<T>(signal: AbortSignal, work: (client: ImapFlow) => Promise<T>): Promise<T> {
      if (closed) throw new ImapSessionError('aborted', 'the email tool is closed');
      if (signal.aborted) throw new ImapSessionError('aborted', 'cancelled before it started');
      let onAbort = (): void => undefined;
      const aborted = new Promise<never>((_, reject) => {
        onAbort = () => {
          reject(new ImapSessionError('aborted', 'cancelled or timed out'));
          // Whatever was waiting on the connection will not be answered: drop it (see the file's comment).
          drop();
        };
      });
      aborted.catch(() => undefined);
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        const attempt = async (): Promise<T> => {
          const client = await connection();
          try {
            return await work(client);
          } catch (error) {
            if (!client.usable) throw new ImapSessionError('dropped', `connection to ${where} lost`, { cause: error });
            throw error;
          }
        };
        return await Promise.race([
          attempt().catch((error: unknown) => {
            // A connection that dropped while idle (a server's autologout, a restart) is found out by the
            // next command: the calls only read, so they are run once more on a new connection.
            if (error instanceof ImapSessionError && error.kind === 'dropped' && !signal.aborted && !closed) return attempt();
            throw error;
          }),
          aborted,
        ]);
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    },

    async close() {
      closed = true;
      const client = current;
      current = null;
      if (client === null) return;
      try {
        await Promise.race([client.logout(), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
      } catch {
        // Already gone: nothing to log out of.
      } finally {
        client.close();
      }
    },
  };
}

const SOCKET_WORDS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found',
};

/** A connect failure in words, without the password or the server's free text. */
function describeConnectError(error: unknown, where: string): ImapSessionError {
  const e = error as { authenticationFailed?: boolean; code?: string; serverResponseCode?: string };
  if (e?.authenticationFailed === true) {
    const code = e.serverResponseCode ? ` (${e.serverResponseCode})` : '';
    return new ImapSessionError('login_refused', `${where} refused the login${code}`, { cause: error });
  }
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const words = code === undefined ? 'no IMAP session' : `${SOCKET_WORDS[code] ?? 'failed'}, ${code}`;
  return new ImapSessionError('unreachable', `${where} unreachable (${words})`, { cause: error });
}
