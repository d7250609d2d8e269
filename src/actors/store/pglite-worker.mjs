// @ts-check
/**
 * The embedded database's own thread. PGlite is PostgreSQL compiled to WebAssembly: every statement runs
 * synchronously for a fraction of a millisecond to a few, and on the gateway's event loop that stalled
 * every socket, stream and timer in the process. Here it runs beside it; `pglite-worker-client.ts` is
 * the other end.
 *
 * Plain JavaScript on purpose: a worker starts without the TypeScript loader the main thread may have
 * (tsx, vitest), so this file must load in bare Node.
 *
 * Protocol (one message port, in order): the worker answers `{ type: 'ready' }` or
 * `{ type: 'failed', error }` once; then for each `{ id, sql, params }` it answers `{ id, rows,
 * affectedRows }` or `{ id, error }` (an error is plain identifiers, see `plainError`), one statement at
 * a time in arrival order; `{ id, close: true }` closes PGlite and is answered `{ id, rows: [] }` before
 * the thread ends.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';

const port = parentPort;
if (port === null) throw new Error('pglite-worker.mjs must run in a worker thread');

/**
 * An error as plain data, for the trip to the main thread: only the identifiers the store's errors are
 * built from. PGlite's errors also carry the whole `query` and its `params` (message text, tokens), and
 * PostgreSQL's `detail`, `where` and even `message` may quote values: none of it leaves this thread.
 */
function plainError(error) {
  const fields = typeof error === 'object' && error !== null ? error : {};
  const plain = {};
  for (const key of ['code', 'severity', 'table', 'column', 'constraint', 'dataType', 'routine']) {
    if (typeof fields[key] === 'string') plain[key] = fields[key];
  }
  // No SQLSTATE: PGlite itself refused the statement (a parameter it cannot serialize, say), not the database.
  if (plain.code === undefined) plain.refusedByClient = true;
  return plain;
}

/**
 * PostgreSQL's defaults size shared buffers for a server (128 MB), and in WebAssembly that memory is
 * taken for good once touched. 16 MB holds the gateway's hot rows (jobs, events, conversations) and keeps
 * the idle process near 250 MiB instead of 400–560 (measured in `npm run bench`).
 */
const LEAN = ['-c', 'shared_buffers=16MB'];

let db;
try {
  db = await PGlite.create(workerData.dataDir, { startParams: [...PGlite.defaultStartParams, ...LEAN] });
  port.postMessage({ type: 'ready' });
} catch (error) {
  // Opening runs no statement of ours, so its message (a bad data directory, say) holds no user data.
  port.postMessage({ type: 'failed', error: { ...plainError(error), message: error instanceof Error ? error.message : String(error) } });
  process.exit(1);
}

// Statements run strictly one after another, in the order they came: the client relies on it for
// transactions (BEGIN … COMMIT arrive as separate statements on the one connection there is).
let chain = Promise.resolve();
port.on('message', (message) => {
  chain = chain.then(async () => {
    if (message.close === true) {
      await db.close();
      port.postMessage({ id: message.id, rows: [] });
      port.close();
      return;
    }
    try {
      const result = await db.query(message.sql, message.params);
      port.postMessage({ id: message.id, rows: result.rows, affectedRows: result.affectedRows });
    } catch (error) {
      port.postMessage({ id: message.id, error: plainError(error) });
    }
  });
});
