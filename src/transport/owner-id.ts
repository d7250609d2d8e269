import { createHash } from 'node:crypto';

/** The owner of everything submitted without auth (DESIGN §4: no tokens, loopback only). */
export const ANONYMOUS = 'anonymous';

/**
 * The id a token's jobs and conversations are stored under: `token:` and the first 16 hex digits of
 * SHA-256 over `switchboard-owner:` + the token. Stable across restarts (jobs of earlier runs stay their
 * owner's), distinct per token in practice, and the token itself is never written anywhere. Migration
 * 0002 computes the same in SQL for rows that held raw tokens.
 */
export function ownerId(token: string): string {
  return `token:${createHash('sha256').update(`switchboard-owner:${token}`, 'utf8').digest('hex').slice(0, 16)}`;
}
