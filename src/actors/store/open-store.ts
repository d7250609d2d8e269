/**
 * The store's start and stop, in the order they must happen: open → migrate → end jobs a crash left
 * running → clean up → (daily clean-ups) … write what is queued → close the database.
 */
import { createDatabase, runMigrations, type Database, type DatabaseConfig } from './create-database.js';
import type { CleanupResult } from './cleanup-old-rows.js';
import type { StoreUnavailableError } from './store-errors.js';
import { createStore, type Store, type StoreOptions } from './store.js';

/** Options of {@link openStore}. */
export interface OpenStoreOptions extends StoreOptions {
  /** Time between clean-ups after the one at start (default 24 h; 0 disables them). */
  cleanupEveryMs?: number;
  /** Failures of background work: scheduled clean-ups, idle pool connections. */
  onError?: (error: unknown) => void;
  /** The embedded database's thread died: the database is gone for this process. */
  onLost?: (error: StoreUnavailableError) => void;
  /** A new embedded database could not be copied from its template; it is made in place instead. */
  onTemplateError?: (error: unknown) => void;
}

/** A started store and what happened at its start. */
export interface OpenedStore {
  readonly store: Store;
  readonly database: Database;
  /** Jobs that were running when the previous process stopped, now ended with `interrupted`. */
  readonly interruptedJobIds: readonly string[];
  /** What the start-up clean-up deleted. */
  readonly cleanup: CleanupResult;
  /** Stops the clean-ups, writes what is queued, closes the database. */
  close(): Promise<void>;
}

/** Opens, migrates and prepares the store; see the file comment for the order. */
export async function openStore(
  config: DatabaseConfig,
  options: OpenStoreOptions = {},
): Promise<OpenedStore> {
  const onError = options.onError ?? (() => undefined);
  const database = await createDatabase(config, {
    onPoolError: onError,
    ...(options.onLost === undefined ? {} : { onLost: options.onLost }),
    ...(options.onTemplateError === undefined ? {} : { onTemplateError: options.onTemplateError }),
  });
  try {
    await runMigrations(database.db);
    const store = createStore(database.db, options);
    const interruptedJobIds = await store.journal.interruptUnfinished();
    await store.loadRecentClientMsgIds();
    const cleanup = await store.cleanup();

    const everyMs = options.cleanupEveryMs ?? 24 * 60 * 60 * 1000;
    const timer = everyMs > 0 ? setInterval(() => void store.cleanup().catch(onError), everyMs) : undefined;
    // A pending clean-up is no reason to keep the process alive.
    timer?.unref();

    let closing: Promise<void> | undefined;
    return {
      store,
      database,
      interruptedJobIds,
      cleanup,
      close: () =>
        (closing ??= (async () => {
          clearInterval(timer);
          try {
            await store.close();
          } finally {
            await database.close();
          }
        })()),
    };
  } catch (error) {
    await database.close().catch(() => undefined);
    throw error;
  }
}
