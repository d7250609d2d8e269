/** Options of {@link createGroupCommit}. */
export interface GroupCommitOptions {
  /** Items per statement (default 200). */
  maxBatch?: number;
}

/** Adds items to the next batch; each `add` resolves once its batch has committed. */
export interface GroupCommit<T> {
  add(item: T): Promise<void>;
}

/**
 * Group commit: one batch is written at a time, and every item that arrives meanwhile joins the next
 * batch. On the embedded database each statement costs the event loop a fixed ~0.3 ms whatever its size,
 * so under load n statements become a few; a lone item is written at once (after the current
 * microtasks, so items added together share a statement). When a batch of several fails, each of its
 * items is written alone, so a row the database refuses fails only its own caller.
 */
export function createGroupCommit<T>(write: (items: readonly T[]) => Promise<void>, options: GroupCommitOptions = {}): GroupCommit<T> {
  const maxBatch = options.maxBatch ?? 200;
  type Waiting = { item: T; resolve: () => void; reject: (error: unknown) => void };
  let queue: Waiting[] = [];
  let writing = false;

  async function writeEach(batch: readonly Waiting[]): Promise<void> {
    for (const waiting of batch) {
      try {
        await write([waiting.item]);
        waiting.resolve();
      } catch (error) {
        waiting.reject(error);
      }
    }
  }

  async function run(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      try {
        await write(batch.map((waiting) => waiting.item));
        for (const waiting of batch) waiting.resolve();
      } catch (error) {
        if (batch.length === 1) batch[0]?.reject(error);
        else await writeEach(batch);
      }
    }
    writing = false;
  }

  return {
    add(item) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        if (writing) return;
        writing = true;
        queueMicrotask(() => void run());
      });
    },
  };
}
