/**
 * The group commit on its own, over a fake `write` that records each batch it is given, can be held
 * open (to see what happens while a batch is in flight) and fails for chosen items.
 */
import { describe, expect, it } from 'vitest';
import { createGroupCommit } from '../src/actors/store/group-commit.js';

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Lets every pending microtask and promise callback run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * A fake `write`: records each batch, counts overlapping writes, and fails a batch that holds an item in
 * `refused`. `hold()` makes the next writes wait until the returned gate opens.
 */
function fakeWriter<T>(refused: ReadonlySet<T> = new Set()) {
  const batches: T[][] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let gate: Promise<void> | undefined;
  const write = async (items: readonly T[]): Promise<void> => {
    batches.push([...items]);
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      if (gate !== undefined) await gate;
      await Promise.resolve();
      const bad = items.find((item) => refused.has(item));
      if (bad !== undefined) throw new Error(`refused ${String(bad)}`);
    } finally {
      inFlight -= 1;
    }
  };
  return {
    write,
    batches,
    get maxInFlight() {
      return maxInFlight;
    },
    get inFlight() {
      return inFlight;
    },
    /** Holds every write from now on until the returned function is called. */
    hold(): () => void {
      const opened = deferred();
      gate = opened.promise;
      return () => {
        gate = undefined;
        opened.resolve();
      };
    },
  };
}

/** The outcome of each promise, without letting a rejection go unhandled. */
function outcomes(promises: Array<Promise<void>>): Promise<Array<'ok' | string>> {
  return Promise.all(
    promises.map((promise) =>
      promise.then(
        () => 'ok' as const,
        (error: unknown) => (error instanceof Error ? error.message : String(error)),
      ),
    ),
  );
}

describe('createGroupCommit', () => {
  it('writes items added in the same tick as one batch, in the order of the calls', async () => {
    const writer = fakeWriter<number>();
    const group = createGroupCommit(writer.write);
    const added = [1, 2, 3, 4, 5].map((n) => group.add(n));
    // Nothing is written synchronously: the batch is gathered until the current microtasks ran.
    expect(writer.batches).toEqual([]);
    expect(await outcomes(added)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(writer.batches).toEqual([[1, 2, 3, 4, 5]]);
  });

  it('writes a lone item at once, alone', async () => {
    const writer = fakeWriter<string>();
    const group = createGroupCommit(writer.write);
    await group.add('only');
    expect(writer.batches).toEqual([['only']]);
    await group.add('next');
    expect(writer.batches).toEqual([['only'], ['next']]);
  });

  it('writes one batch at a time; items added while a write is in flight join the next batch', async () => {
    const writer = fakeWriter<string>();
    const group = createGroupCommit(writer.write);
    const release = writer.hold();
    const first = group.add('a');
    await settle();
    expect(writer.batches).toEqual([['a']]);
    expect(writer.inFlight).toBe(1);

    const resolved: string[] = [];
    const later = ['b', 'c', 'd'].map((item) => group.add(item).then(() => void resolved.push(item)));
    await settle();
    await settle();
    // Still only the first batch: the others wait for it.
    expect(writer.batches).toEqual([['a']]);
    expect(resolved).toEqual([]);

    release();
    await first;
    await Promise.all(later);
    expect(writer.batches).toEqual([['a'], ['b', 'c', 'd']]);
    expect(resolved).toEqual(['b', 'c', 'd']);
    expect(writer.maxInFlight).toBe(1);
  });

  it('keeps writing as long as items keep arriving, never two batches at once', async () => {
    const writer = fakeWriter<number>();
    const group = createGroupCommit(writer.write);
    const added: Array<Promise<void>> = [];
    // Items arrive over several ticks while earlier batches are written.
    for (let round = 0; round < 5; round += 1) {
      for (let i = 0; i < 3; i += 1) added.push(group.add(round * 3 + i));
      await settle();
    }
    await Promise.all(added);
    expect(writer.batches.flat()).toEqual(Array.from({ length: 15 }, (_, i) => i));
    expect(writer.maxInFlight).toBe(1);
  });

  it('respects maxBatch and keeps the order across batches', async () => {
    const writer = fakeWriter<number>();
    const group = createGroupCommit(writer.write, { maxBatch: 3 });
    const resolved: number[] = [];
    const added = [1, 2, 3, 4, 5, 6, 7].map((n) => group.add(n).then(() => void resolved.push(n)));
    await Promise.all(added);
    expect(writer.batches).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
    expect(resolved).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(writer.maxInFlight).toBe(1);
  });

  it('uses batches of at most 200 items by default', async () => {
    const writer = fakeWriter<number>();
    const group = createGroupCommit(writer.write);
    await Promise.all(Array.from({ length: 450 }, (_, i) => group.add(i)));
    expect(writer.batches.map((batch) => batch.length)).toEqual([200, 200, 50]);
    expect(writer.batches.flat()).toEqual(Array.from({ length: 450 }, (_, i) => i));
  });

  it('retries each item of a failed batch alone, so only the refused item rejects', async () => {
    const writer = fakeWriter<string>(new Set(['bad']));
    const group = createGroupCommit(writer.write);
    const added = ['a', 'bad', 'c', 'd'].map((item) => group.add(item));
    expect(await outcomes(added)).toEqual(['ok', 'refused bad', 'ok', 'ok']);
    expect(writer.batches).toEqual([['a', 'bad', 'c', 'd'], ['a'], ['bad'], ['c'], ['d']]);
    expect(writer.maxInFlight).toBe(1);
  });

  it('rejects a lone failing item with the error of its write, without retrying it', async () => {
    const writer = fakeWriter<string>(new Set(['bad']));
    const group = createGroupCommit(writer.write);
    await expect(group.add('bad')).rejects.toThrow('refused bad');
    expect(writer.batches).toEqual([['bad']]);
  });

  it('rejects every refused item of a batch with its own error', async () => {
    const writer = fakeWriter<string>(new Set(['x', 'y']));
    const group = createGroupCommit(writer.write);
    const added = ['x', 'ok1', 'y', 'ok2'].map((item) => group.add(item));
    expect(await outcomes(added)).toEqual(['refused x', 'ok', 'refused y', 'ok']);
  });

  it('writes items added during the one-by-one retries afterwards, as a batch of their own', async () => {
    const writer = fakeWriter<string>(new Set(['bad']));
    const group = createGroupCommit(writer.write);
    const release = writer.hold();
    const first = ['a', 'bad'].map((item) => group.add(item));
    await settle();
    expect(writer.batches).toEqual([['a', 'bad']]);
    const later = ['e', 'f'].map((item) => group.add(item));
    release();
    expect(await outcomes([...first, ...later])).toEqual(['ok', 'refused bad', 'ok', 'ok']);
    expect(writer.batches).toEqual([['a', 'bad'], ['a'], ['bad'], ['e', 'f']]);
    expect(writer.maxInFlight).toBe(1);
  });

  it('keeps working after a failure and after it went idle', async () => {
    const writer = fakeWriter<string>(new Set(['bad']));
    const group = createGroupCommit(writer.write);
    await expect(group.add('bad')).rejects.toThrow('refused bad');
    await settle();
    await group.add('after');
    await settle();
    expect(await outcomes([group.add('p'), group.add('q')])).toEqual(['ok', 'ok']);
    expect(writer.batches).toEqual([['bad'], ['after'], ['p', 'q']]);
  });

  it('starts a new batch for an item added from the callback of a committed one', async () => {
    const writer = fakeWriter<string>();
    const group = createGroupCommit(writer.write);
    const chained = group.add('first').then(() => group.add('second'));
    await chained;
    expect(writer.batches).toEqual([['first'], ['second']]);
  });
});
