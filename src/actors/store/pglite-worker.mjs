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
 * `{ type: 'failed', error }` once; then for each `{ id, sql, params }` it answers
 * `{ id, rows, affectedRows }` or `{ id, error }`, one statement at a time in arrival order; `{ id,
 * close: true }` closes PGlite and is answered `{ id, rows: [] }` before the thread ends.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';

const port = parentPort;
if (port === null) throw new Error('pglite-worker.mjs must run in a worker thread');

/** An error as plain data: PostgreSQL's fields (code, detail, …) survive the trip, which a cloned Error's would not. */
function plainError(error) {
  if (!(error instanceof Error)) return { message: String(error) };
  const fields = { ...error };
  return { ...fields, name: error.name, message: error.message };
}

let db;
try {
  db = await PGlite.create(workerData.dataDir);
  port.postMessage({ type: 'ready' });
} catch (error) {
  port.postMessage({ type: 'failed', error: plainError(error) });
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
