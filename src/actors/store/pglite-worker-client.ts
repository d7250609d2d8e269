/**
 * PGlite on its own thread, and the kysely dialect that talks to it. See `pglite-worker.mjs` for why
 * and for the message protocol.
 */
import { Worker } from 'node:worker_threads';
import { StoreRejectedError, StoreUnavailableError, toStoreError } from './store-errors.js';
import {
  CompiledQuery,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';

/** PGlite's answer to one statement. */
export interface WorkerQueryResult {
  rows: unknown[];
  affectedRows?: number;
}

/** The main thread's end of a PGlite worker. */
export interface PgliteWorkerClient {
  /** Runs one statement; statements run in the order they are sent. */
  query(sql: string, params: readonly unknown[]): Promise<WorkerQueryResult>;
  /** Closes PGlite and ends the thread. */
  close(): Promise<void>;
}

type Reply = { id: number; rows: unknown[]; affectedRows?: number } | { id: number; error: Record<string, unknown> };

/** Options of {@link startPgliteWorker}. */
export interface PgliteWorkerOptions {
  /**
   * The thread ended or failed while open (not through `close`): every statement from now on fails with
   * `store_unavailable`, and nothing can bring the database back in this process.
   */
  onLost?: (error: StoreUnavailableError) => void;
}

/** Starts PGlite in `dataDir` on a worker thread; resolves once it is open, rejects with its error. */
export async function startPgliteWorker(dataDir: string, options: PgliteWorkerOptions = {}): Promise<PgliteWorkerClient> {
  const worker = new Worker(new URL('./pglite-worker.mjs', import.meta.url), {
    workerData: { dataDir },
    // The thread's own JavaScript is a message relay: a small young generation holds its garbage, and
    // V8's default (tens of MiB, never returned) was idle memory (`npm run bench`, idle RSS).
    resourceLimits: { maxYoungGenerationSizeMb: 4 },
  });
  const waiting = new Map<number, { resolve: (result: WorkerQueryResult) => void; reject: (error: Error) => void }>();
  let nextId = 1;
  let stopped: StoreUnavailableError | undefined;
  let closing: Promise<void> | undefined;

  const stop = (error: StoreUnavailableError): void => {
    const first = stopped === undefined;
    stopped ??= error;
    for (const { reject } of waiting.values()) reject(stopped);
    waiting.clear();
    if (first && closing === undefined) options.onLost?.(stopped);
  };

  await new Promise<void>((resolve, reject) => {
    const onExit = (code: number) => reject(new Error(`the embedded database thread exited with code ${code} while opening`));
    worker.once('error', reject);
    worker.once('exit', onExit);
    worker.once('message', (message: { type: 'ready' } | { type: 'failed'; error: Record<string, unknown> }) => {
      worker.off('error', reject);
      worker.off('exit', onExit);
      if (message.type === 'ready') resolve();
      else reject(new Error(typeof message.error['message'] === 'string' ? message.error['message'] : 'the embedded database did not open'));
    });
  });

  worker.on('message', (reply: Reply) => {
    const entry = waiting.get(reply.id);
    if (entry === undefined) return;
    waiting.delete(reply.id);
    if ('error' in reply) {
      const refused = reply.error['refusedByClient'] === true;
      entry.reject(refused ? new StoreRejectedError('the embedded database could not take the statement', undefined) : toStoreError(reply.error));
    }
    else entry.resolve({ rows: reply.rows, ...(reply.affectedRows === undefined ? {} : { affectedRows: reply.affectedRows }) });
  });
  worker.on('error', (error) => stop(new StoreUnavailableError(`the embedded database thread failed (${error.name})`)));
  worker.on('exit', (code) => stop(new StoreUnavailableError(`the embedded database thread exited (code ${code})`)));

  const send = (message: { sql: string; params: readonly unknown[] } | { close: true }): Promise<WorkerQueryResult> => {
    if (stopped) return Promise.reject(stopped);
    const id = nextId++;
    return new Promise<WorkerQueryResult>((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      worker.postMessage({ id, ...message });
    });
  };

  return {
    query: (sql, params) => send({ sql, params }),
    close: () =>
      (closing ??= (async () => {
        if (!stopped) await send({ close: true }).catch(() => undefined);
        await worker.terminate();
      })()),
  };
}

/**
 * Kysely over a {@link PgliteWorkerClient}. Statements are pipelined: each is posted at once and the
 * worker runs them in arrival order, so a query never waits for another's round trip. PGlite has one
 * session, so a transaction is the exception: from BEGIN to COMMIT/ROLLBACK only its own connection
 * may send, and every other statement waits until it ends.
 */
export class PgliteWorkerDialect implements Dialect {
  constructor(private readonly client: PgliteWorkerClient) {}

  createAdapter() {
    return new PostgresAdapter();
  }

  createDriver(): Driver {
    return new PgliteWorkerDriver(this.client);
  }

  createQueryCompiler() {
    return new PostgresQueryCompiler();
  }

  createIntrospector(db: Kysely<unknown>) {
    return new PostgresIntrospector(db);
  }
}

/** Who may send now: nobody holds a transaction, or only its holder. */
class TransactionGate {
  private holder: PgliteWorkerConnection | null = null;
  private ended: Promise<void> = Promise.resolve();
  private end: () => void = () => undefined;

  /** Resolves when `connection` may send a statement. */
  async clear(connection: PgliteWorkerConnection): Promise<void> {
    while (this.holder !== null && this.holder !== connection) await this.ended;
  }

  async take(connection: PgliteWorkerConnection): Promise<void> {
    await this.clear(connection);
    this.holder = connection;
    this.ended = new Promise((resolve) => (this.end = resolve));
  }

  release(connection: PgliteWorkerConnection): void {
    if (this.holder !== connection) return;
    this.holder = null;
    this.end();
  }
}

class PgliteWorkerConnection implements DatabaseConnection {
  constructor(
    private readonly client: PgliteWorkerClient,
    private readonly gate: TransactionGate,
  ) {}

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    await this.gate.clear(this);
    const result = await this.client.query(compiledQuery.sql, compiledQuery.parameters);
    const rows = result.rows as R[];
    return result.affectedRows ? { rows, numAffectedRows: BigInt(result.affectedRows) } : { rows };
  }

  async *streamQuery<R>(compiledQuery: CompiledQuery, chunkSize = 100): AsyncIterableIterator<QueryResult<R>> {
    const { rows } = await this.executeQuery<R>(compiledQuery);
    for (let at = 0; at < rows.length; at += chunkSize) yield { rows: rows.slice(at, at + chunkSize) };
  }
}

class PgliteWorkerDriver implements Driver {
  private readonly gate = new TransactionGate();

  constructor(private readonly client: PgliteWorkerClient) {}

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    return new PgliteWorkerConnection(this.client, this.gate);
  }

  async releaseConnection(): Promise<void> {}

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    await this.gate.take(connection as PgliteWorkerConnection);
    const begin = settings.isolationLevel ? `start transaction isolation level ${settings.isolationLevel}` : 'begin';
    await this.endOnFailure(connection, () => connection.executeQuery(CompiledQuery.raw(begin)));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await this.endOnFailure(connection, () => connection.executeQuery(CompiledQuery.raw('commit')), true);
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await this.endOnFailure(connection, () => connection.executeQuery(CompiledQuery.raw('rollback')), true);
  }

  async destroy(): Promise<void> {
    await this.client.close();
  }

  /** Runs a transaction statement; the gate opens after COMMIT/ROLLBACK, or after any of them fails. */
  private async endOnFailure(connection: DatabaseConnection, run: () => Promise<unknown>, ends = false): Promise<void> {
    try {
      await run();
    } catch (error) {
      this.gate.release(connection as PgliteWorkerConnection);
      throw error;
    }
    if (ends) this.gate.release(connection as PgliteWorkerConnection);
  }
}
