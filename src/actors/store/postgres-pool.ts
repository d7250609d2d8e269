/**
 * The node-postgres pool as kysely uses it, with the two guards a gateway needs in front of a server
 * that may stall: every statement has a deadline on our side (a paused or unreachable server never
 * answers, so the server's own `statement_timeout` cannot fire), and every error leaves here as a
 * sanitized store error (see `store-errors.ts`).
 */
import type { PostgresCursor, PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';
import pg from 'pg';
import { StoreUnavailableError, toStoreError } from './store-errors.js';

/** Options of {@link createPostgresPool}. */
export interface PostgresPoolOptions {
  /** Connections at most (default 10). */
  maxConnections?: number;
  /** Giving up on opening a connection (TCP and start-up). */
  connectTimeoutMs: number;
  /** Giving up on one statement; the server is told the same through `statement_timeout`. */
  statementTimeoutMs: number;
  /**
   * A connection failed outside a statement (server restart or shutdown, network): an idle pooled one,
   * which the pool replaces, or one checked out between statements, which is not reused.
   */
  onIdleError?: (error: Error) => void;
}

/** A pool for kysely's `PostgresDialect` over `url`. */
export function createPostgresPool(url: string, options: PostgresPoolOptions): PostgresPool {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs,
    // The server ends a statement it is still running; our own timer covers a server that does not answer.
    statement_timeout: options.statementTimeoutMs,
  });
  // Without a listener node-postgres raises an idle client's failure as an uncaught `error` event.
  pool.on('error', (error) => options.onIdleError?.(toStoreError(error)));
  const clients = new WeakMap<pg.PoolClient, GuardedClient>();
  return {
    async connect() {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (error) {
        throw toStoreError(error);
      }
      // kysely keys its connection objects by client: hand out the same wrapper for the same client.
      let guarded = clients.get(client);
      if (guarded === undefined) {
        const created = new GuardedClient(client, options.statementTimeoutMs);
        // node-postgres only listens to a client while it is idle in the pool: a checked-out client that
        // fails between statements (57P01 when the server shuts down) would raise an uncaught `error`.
        client.on('error', (error) => {
          if (created.checkedOut) created.fail(error, options.onIdleError);
        });
        clients.set(client, (guarded = created));
      }
      guarded.checkedOut = true;
      return guarded;
    },
    end: () => pool.end(),
  };
}

/**
 * A pooled client whose statements time out. A statement that timed out may still be running or
 * queued on the connection, so that connection is never reused: it is destroyed when released.
 */
class GuardedClient implements PostgresPoolClient {
  private broken = false;
  /** Between `connect()` and `release()`; an idle client's failures are the pool's to report. */
  checkedOut = false;

  constructor(
    private readonly client: pg.PoolClient,
    private readonly timeoutMs: number,
  ) {}

  query<R>(sql: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>>;
  query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>;
  query<R>(sqlOrCursor: string | PostgresCursor<R>, parameters?: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
    if (typeof sqlOrCursor !== 'string') throw new TypeError('cursors are not used by the store');
    return this.run<R>(sqlOrCursor, parameters ?? []);
  }

  release(): void {
    this.checkedOut = false;
    // node-postgres destroys a client released with an error instead of pooling it again.
    this.client.release(this.broken ? new Error('this connection failed or a statement on it timed out') : undefined);
  }

  /** The connection failed between statements: report it once and never reuse it. */
  fail(error: Error, report: ((error: Error) => void) | undefined): void {
    if (this.broken) return;
    this.broken = true;
    report?.(toStoreError(error));
  }

  private run<R>(sql: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>> {
    if (this.broken) return Promise.reject(new StoreUnavailableError('the database connection was given up after a timeout'));
    const query = this.client.query(sql, [...parameters]) as unknown as Promise<PostgresQueryResult<R>>;
    return new Promise<PostgresQueryResult<R>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.broken = true;
        reject(new StoreUnavailableError(`the database did not answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      query.then(
        (result) => {
          clearTimeout(timer);
          resolve(result);
        },
        (error: unknown) => {
          clearTimeout(timer);
          // A connection-level failure leaves the client unusable too.
          const storeError = toStoreError(error);
          if (storeError instanceof StoreUnavailableError) this.broken = true;
          reject(storeError);
        },
      );
    });
  }
}
