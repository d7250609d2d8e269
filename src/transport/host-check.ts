import { isIP } from 'node:net';

/** Whether a request's `Host` header names this server; `undefined` when the header is absent. */
export type HostCheck = (hostHeader: string | undefined) => boolean;

/** The names a loopback gateway always answers to. */
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];
const UNSPECIFIED = new Set(['0.0.0.0', '[::]']);

/**
 * Guards a gateway without auth tokens against DNS rebinding: a web page on `evil.example` whose name
 * is made to resolve to 127.0.0.1 can reach the gateway from the user's browser, but the browser still
 * sends `Host: evil.example`. Only `localhost`, `127.0.0.1`, `[::1]` and the server's own configured
 * names are accepted, each with or without a port. Any port: behind a tunnel or port mapping
 * (`ssh -L 9000:localhost:8787`) the client's port is not ours, and the name alone is what rebinding
 * cannot forge. A missing `Host` is accepted: browsers always send one, so it is not a browser.
 * With auth tokens every request must carry a token a web page cannot know, and nothing is checked.
 */
export function createHostCheck(options: { tokens: readonly string[]; hosts: readonly string[] }): HostCheck {
  if (options.tokens.length > 0) return () => true;
  // A server bound to every interface has no name of its own; a browser sent to 0.0.0.0 reaches
  // localhost on some systems, so that address is never taken as one.
  const own = options.hosts.map(normalizeName).filter((name) => !UNSPECIFIED.has(name));
  const allowed = new Set([...LOOPBACK_NAMES, ...own]);
  return (hostHeader) => {
    if (hostHeader === undefined) return true;
    const name = hostName(hostHeader);
    return name !== null && allowed.has(name);
  };
}

/** The name part of a `Host` header (`[v6]` kept in brackets), lower-cased; null when it is malformed. */
function hostName(header: string): string | null {
  const match = /^(\[[0-9a-f:.]+\]|[^\s:[\]]+)(?::(\d{1,5}))?$/i.exec(header.trim());
  if (match === null) return null;
  return (match[1] ?? '').toLowerCase();
}

/** A configured host as it appears in a `Host` header: an IPv6 literal in brackets, lower-cased. */
function normalizeName(host: string): string {
  const bare = host.replace(/^\[|\]$/g, '');
  return (isIP(bare) === 6 ? `[${bare}]` : bare).toLowerCase();
}
