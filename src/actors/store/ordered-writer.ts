/** Options of {@link createOrderedWriter}. */
export interface OrderedWriterOptions<T> {
  /** Writes a batch in one go (one statement); throws to fail it. */
  write(items: readonly T[]): Promise<void>;
  /** Items of one key are committed in the order they were added, and never after an earlier one failed. */
  keyOf(item: T): string;
  /** True when the store could not be used at all (nothing in the batch was at fault). */
  isUnavailable(error: unknown): boolean;
  /** Items per batch (default 200). */
  maxBatch?: number;
  /** First wait before a durable item is tried again (default 250 ms), doubling up to `retryMaxMs` (5 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Sees, per item committed, how long it waited from `add` until its batch committed (the metrics). */
  onCommitted?: (waitedMs: number) => void;
}

/** The writer; see {@link createOrderedWriter}. */
export interface OrderedWriter<T> {
  /** Queues an item; resolves once it is committed, rejects with the error that failed it. */
  add(item: T): Promise<void>;
  /**
   * Queues an item that must be written eventually (the repair after a failure): while the store is
   * unavailable it is tried again with backoff, until it is written or the writer closes. It is written
   * even when an earlier item of its key failed, and once it is committed that key is clear again.
   * Nothing more of its key may be added after it.
   */
  addDurable(item: T): Promise<void>;
  /** Items queued, being written or waiting for a retry. */
  readonly pendingCount: number;
  /** Writes what is queued (durable items get one last try), then refuses new items. */
  close(): Promise<void>;
}

interface Entry<T> {
  item: T;
  key: string;
  durable: boolean;
  /** `performance.now()` at `add`, when someone times the waits; else 0. */
  addedAt: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** Why an item was not written: an earlier item of its key failed (`cause` is that failure). */
export class EarlierWriteFailedError extends Error {
  constructor(cause: unknown) {
    super('an earlier write of the same key failed', { cause });
  }
}

/**
 * One ordered writer for everything the store writes on the hot path: group commit (one batch in
 * flight, everything added meanwhile rides the next one, in order) with per-key ordering under failure.
 *
 * - A batch the store refuses (a bad row, not an outage) is split by key and each key's items are
 *   written on their own, so only the key at fault fails.
 * - When an item fails, every later item of its key fails too, unwritten: for a job's journal that
 *   means the committed events are always a gap-free prefix of what the job emitted.
 * - When the store is unavailable the whole batch fails; durable items wait and are tried again.
 */
export function createOrderedWriter<T>(options: OrderedWriterOptions<T>): OrderedWriter<T> {
  const maxBatch = options.maxBatch ?? 200;
  const retryMinMs = options.retryMinMs ?? 250;
  const retryMaxMs = options.retryMaxMs ?? 5_000;
  let queue: Array<Entry<T>> = [];
  /** Durable items waiting for their retry, in order. */
  let parked: Array<Entry<T>> = [];
  /** Keys whose items are no longer written, with the error that stopped them. */
  const failed = new Map<string, unknown>();
  let writing = false;
  let inFlight = 0;
  let retryMs = retryMinMs;
  let retryTimer: NodeJS.Timeout | undefined;
  let closing = false;
  const drained: Array<() => void> = [];

  const settle = (entries: ReadonlyArray<Entry<T>>): void => {
    const { onCommitted } = options;
    if (onCommitted !== undefined) {
      const now = performance.now();
      for (const entry of entries) onCommitted(now - entry.addedAt);
    }
    for (const entry of entries) {
      if (entry.durable) failed.delete(entry.key);
      entry.resolve();
    }
  };

  /**
   * The entries could not be written because the store is unavailable. Durable ones wait, and so do the
   * durable ones still queued: they would only fail the same way, each costing the ordinary writes behind
   * it a timeout. One of them probes the store at each retry tick; the first write that succeeds sends
   * them all (see `release`). While closing there is no later: they fail.
   */
  const unavailable = (entries: ReadonlyArray<Entry<T>>, error: unknown): void => {
    for (const entry of entries) {
      if (entry.durable) parked.push(entry);
      else refuse(entry, error);
    }
    if (queue.some((entry) => entry.durable)) {
      parked.push(...queue.filter((entry) => entry.durable));
      queue = queue.filter((entry) => !entry.durable);
    }
    if (closing) {
      for (const entry of parked.splice(0)) entry.reject(error);
      return;
    }
    if (parked.length > 0 && retryTimer === undefined) {
      retryTimer = setTimeout(probe, retryMs);
      retryMs = Math.min(retryMaxMs, retryMs * 2);
    }
  };

  const refuse = (entry: Entry<T>, error: unknown): void => {
    if (!entry.durable && !failed.has(entry.key)) failed.set(entry.key, error);
    entry.reject(error);
  };

  /** One waiting durable item tries the store again, ahead of anything queued. */
  const probe = (): void => {
    retryTimer = undefined;
    const first = parked.shift();
    if (first === undefined) return;
    queue.unshift(first);
    void pump();
  };

  /** The store answers: every waiting durable item goes, ahead of anything queued (they are older). */
  const release = (): void => {
    clearTimeout(retryTimer);
    retryTimer = undefined;
    if (parked.length === 0) return;
    queue = parked.concat(queue);
    parked = [];
  };

  /** Writes `entries` key by key (after the store refused them together); stops at an outage. */
  const writeByKey = async (entries: ReadonlyArray<Entry<T>>): Promise<void> => {
    const groups = new Map<string, Array<Entry<T>>>();
    for (const entry of entries) {
      const group = groups.get(entry.key);
      if (group === undefined) groups.set(entry.key, [entry]);
      else group.push(entry);
    }
    const pending = [...groups.values()];
    while (pending.length > 0) {
      const group = pending.shift() as Array<Entry<T>>;
      try {
        await options.write(group.map((entry) => entry.item));
        settle(group);
      } catch (error) {
        if (options.isUnavailable(error)) return unavailable([...group, ...pending.flat()], error);
        for (const entry of group) refuse(entry, error);
      }
    }
  };

  /** The next batch: durable items alone, ordinary ones up to `maxBatch`; items of failed keys are refused. */
  const nextBatch = (): Array<Entry<T>> => {
    const batch: Array<Entry<T>> = [];
    let taken = 0;
    while (taken < queue.length && batch.length < maxBatch) {
      const entry = queue[taken] as Entry<T>;
      if (!entry.durable && failed.has(entry.key)) {
        taken += 1;
        entry.reject(new EarlierWriteFailedError(failed.get(entry.key)));
        continue;
      }
      if (entry.durable && batch.length > 0) break;
      batch.push(entry);
      taken += 1;
      if (entry.durable) break;
    }
    // One splice, not a shift per item: under load the queue holds thousands.
    queue.splice(0, taken);
    return batch;
  };

  const pump = async (): Promise<void> => {
    if (writing) return;
    writing = true;
    for (let batch = nextBatch(); batch.length > 0; batch = nextBatch()) {
      inFlight = batch.length;
      try {
        await options.write(batch.map((entry) => entry.item));
        settle(batch);
        retryMs = retryMinMs;
        release();
      } catch (error) {
        if (options.isUnavailable(error)) unavailable(batch, error);
        else if (batch.length === 1) refuse(batch[0] as Entry<T>, error);
        else await writeByKey(batch);
      }
    }
    writing = false;
    inFlight = 0;
    // Only `close` waits here; what is parked by then has had its last try.
    for (const wake of drained.splice(0)) wake();
  };

  const add = (item: T, durable: boolean): Promise<void> => {
    if (closing) return Promise.reject(new Error('the writer is closed'));
    return new Promise<void>((resolve, reject) => {
      const entry = { item, key: options.keyOf(item), durable, addedAt: options.onCommitted === undefined ? 0 : performance.now(), resolve, reject };
      // Durable items are waiting for the store to come back: this one waits with them.
      if (durable && parked.length > 0) {
        parked.push(entry);
        return;
      }
      queue.push(entry);
      // At the end of this turn of the event loop, so that items made together share a statement: a
      // job's accept and the events of its start, or the events of many jobs answered by one read.
      if (!writing && queue.length === 1) setImmediate(() => void pump());
    });
  };

  return {
    add: (item) => add(item, false),
    addDurable: (item) => add(item, true),
    get pendingCount() {
      return queue.length + parked.length + inFlight;
    },
    async close() {
      if (closing) return;
      closing = true;
      release();
      if (!writing && queue.length === 0) return;
      await new Promise<void>((resolve) => {
        drained.push(resolve);
        void pump();
      });
    },
  };
}
