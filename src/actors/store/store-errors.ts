/**
 * Database failures as the rest of Switchboard sees them. Both drivers raise errors that carry the
 * statement's data: PGlite puts the whole `query` and its `params` (message text, tokens) on the error,
 * PostgreSQL puts values in `detail`, `where` and, for errors a trigger raises, in the message itself.
 * Every error leaves the driver edge as one of the two classes below instead, built from identifiers
 * only (SQLSTATE, table, column, constraint), so logging one can never leak a body or a token.
 */
import { SwitchboardError } from '../../errors.js';

/**
 * The database cannot be used right now: connection refused or dropped, a timeout, the server shutting
 * down, the embedded database's thread gone. Retrying later may work. Reason `store_unavailable`.
 */
export class StoreUnavailableError extends SwitchboardError {
  readonly code = 'store_unavailable';
  readonly retryable = true;
  constructor(message: string) {
    super('store_unavailable', message);
  }
}

/**
 * The database refused the statement itself (a constraint, a value it cannot store, a bug in ours):
 * the same statement would fail again. Reason `internal`: the user can do nothing about it.
 */
export class StoreRejectedError extends SwitchboardError {
  readonly code = 'store_rejected';
  readonly retryable = false;
  /** The SQLSTATE, when the database gave one. */
  readonly sqlState: string | undefined;
  constructor(message: string, sqlState: string | undefined) {
    super('internal', message);
    this.sqlState = sqlState;
  }
}

/** True for a failure that says the database is unreachable rather than that the statement is wrong. */
export function isStoreUnavailable(error: unknown): boolean {
  return error instanceof StoreUnavailableError;
}

/**
 * SQLSTATE classes that describe the server or the connection, not the statement: 08 connection
 * exception, 53 insufficient resources, 57 operator intervention (57014 is a statement timeout), 58
 * system error; and the two transaction conflicts that a retry resolves.
 */
const UNAVAILABLE_STATES = /^(08|53|57|58)|^(40001|40P01)$/;

/** Node's codes for a network failure on the way to the server. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

const SAFE_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$.]{0,62}$/;

/**
 * Rebuilds any error a driver threw as a {@link StoreUnavailableError} or a {@link StoreRejectedError}
 * whose message holds identifiers only. Errors that are already ours pass through. An error without a
 * SQLSTATE comes from the connection (node-postgres' "Connection terminated…", a socket error), so it
 * counts as the database being unavailable.
 */
export function toStoreError(error: unknown): StoreUnavailableError | StoreRejectedError {
  if (error instanceof StoreUnavailableError || error instanceof StoreRejectedError) return error;
  const fields = typeof error === 'object' && error !== null ? (error as Record<string, unknown>) : {};
  const code = typeof fields['code'] === 'string' ? fields['code'] : undefined;
  const sqlState = code !== undefined && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
  if (sqlState === undefined) {
    const what = code !== undefined && NETWORK_CODES.has(code) ? code : 'the connection failed';
    return new StoreUnavailableError(`the database is unavailable (${what})`);
  }
  const where = ['table', 'column', 'constraint']
    .map((key) => [key, fields[key]] as const)
    .filter((entry): entry is readonly [string, string] => typeof entry[1] === 'string' && SAFE_IDENTIFIER.test(entry[1]))
    .map(([key, value]) => `${key} ${value}`);
  const detail = where.length > 0 ? `, ${where.join(', ')}` : '';
  if (UNAVAILABLE_STATES.test(sqlState)) return new StoreUnavailableError(`the database is unavailable (SQLSTATE ${sqlState}${detail})`);
  return new StoreRejectedError(`the database refused the statement (SQLSTATE ${sqlState}${detail})`, sqlState);
}
