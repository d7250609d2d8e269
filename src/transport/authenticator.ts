import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ANONYMOUS, ownerId } from './owner-id.js';

/** Who a request is: an owner id, or null when it must be refused (401). */
export type Authenticator = (req: IncomingMessage, url: URL) => string | null;

/**
 * Authenticates a request by `Authorization: Bearer TOKEN` or `?token=TOKEN`: its owner id (see
 * {@link ownerId}) for a configured token, `anonymous` when no tokens are configured, else null. Tokens
 * are compared as SHA-256 digests with `timingSafeEqual`, against every configured token, so neither
 * the length nor the position of a match shows in the timing.
 */
export function createAuthenticator(tokens: readonly string[]): Authenticator {
  const known = tokens.map((token) => ({ owner: ownerId(token), digest: sha256(token) }));
  return (req, url) => {
    if (known.length === 0) return ANONYMOUS;
    const presented = bearerToken(req.headers.authorization) ?? url.searchParams.get('token');
    if (presented === null || presented.length === 0) return null;
    const digest = sha256(presented);
    let owner: string | null = null;
    for (const candidate of known) if (timingSafeEqual(digest, candidate.digest)) owner = candidate.owner;
    return owner;
  };
}

function bearerToken(header: string | undefined): string | null {
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
