/**
 * PGlite on its own thread, and the kysely dialect that talks to it. See `pglite-worker.mjs` for why
 * and for the message protocol.
 */
import { Worker } from 'node:worker_threads';
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

/** Rebuilds a database error with its fields (`code` is the SQLSTATE the store's retry rules read). */
function toError(fields: Record<string, unknown>): Error {
  const error = new Error(typeof fields['message'] === 'string' ? fields['message'] : 'embedded database error');
  Object.assign(error, fields);
  return error;
}

/** Starts PGlite in `dataDir` on a worker thread; resolves once it is open, rejects with its error. */
export async function startPgliteWorker(dataDir: string): Promise<PgliteWorkerClient> {
  const worker = new Worker(new URL('./pglite-worker.mjs', import.meta.url), { workerData: { dataDir } });
  const waiting = new Map<number, { resolve: (result: WorkerQueryResult) => void; reject: (error: Error) => void }>();
  let nextId = 1;
  let stopped: Error | undefined;

  const stop = (error: Error): void => {
    stopped ??= error;
    for (const { reject } of waiting.values()) reject(stopped);
    waiting.clear();
  };

  await new Promise<void>((resolve, reject) => {
    const onExit = (code: number) => reject(new Error(`the embedded database thread exited with code ${code} while opening`));
    worker.once('error', reject);
    worker.once('exit', onExit);
    worker.once('message', (message: { type: 'ready' } | { type: 'failed'; error: Record<string, unknown> }) => {
      worker.off('error', reject);
      worker.off('exit', onExit);
      if (message.type === 'ready') resolve();
      else reject(toError(message.error));
    });
  });

  worker.on('message', (reply: Reply) => {
    const entry = waiting.get(reply.id);
    if (entry === undefined) return;
    waiting.delete(reply.id);
    if ('error' in reply) entry.reject(toError(reply.error));
    else entry.resolve({ rows: reply.rows, ...(reply.affectedRows === undefined ? {} : { affectedRows: reply.affectedRows }) });
  });
  worker.on('error', (error) => stop(new Error(`the embedded database thread failed: ${error.message}`, { cause: error })));
  worker.on('exit', (code) => stop(new Error(`the embedded database thread exited (code ${code})`)));

  const send = (message: { sql: string; params: readonly unknown[] } | { close: true }): Promise<WorkerQueryResult> => {
    if (stopped) return Promise.reject(stopped);
    const id = nextId++;
    return new Promise<WorkerQueryResult>((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      worker.postMessage({ id, ...message });
    });
  };

  let closing: Promise<void> | undefined;
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
