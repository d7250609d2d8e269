// @ts-check
/**
 * Test-only preload (`node --import <this file> src/main.ts …`): remembers every embedded-database
 * worker thread the process starts (`src/actors/store/pglite-worker.mjs`) and terminates them when the
 * process receives SIGUSR2 — the embedded database dying under a running gateway, without touching
 * `src/`.
 *
 * `worker_threads.Worker` is replaced by a subclass on the builtin's exports object, and
 * `syncBuiltinESMExports()` carries that over to ESM `import { Worker } from 'node:worker_threads'`,
 * which the gateway's modules evaluate after this preload. Each SIGUSR2 writes one line to stderr,
 * `kill-pglite-worker: terminating N worker(s)`, so a test can tell that it took effect.
 */
import { createRequire, syncBuiltinESMExports } from 'node:module';

const require = createRequire(import.meta.url);
/** @type {typeof import('node:worker_threads')} */
const threads = require('node:worker_threads');

/** @type {Set<import('node:worker_threads').Worker>} */
const workers = new Set();

class RememberedWorker extends threads.Worker {
  /**
   * @param {string | URL} filename
   * @param {import('node:worker_threads').WorkerOptions} [options]
   */
  constructor(filename, options) {
    super(filename, options);
    if (String(filename).includes('pglite-worker')) {
      workers.add(this);
      this.once('exit', () => workers.delete(this));
    }
  }
}

threads.Worker = RememberedWorker;
syncBuiltinESMExports();

process.on('SIGUSR2', () => {
  process.stderr.write(`kill-pglite-worker: terminating ${workers.size} worker(s)\n`);
  for (const worker of workers) void worker.terminate();
});
