/**
 * The ordered writer on its own, over a fake `write` that records each batch it is given, can be held
 * open (to see what happens while a batch is in flight), refuses chosen items and can be "down". Items
 * are strings `key:name`; the key is the part before the colon. Retries run on vitest's fake clock.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createOrderedWriter, EarlierWriteFailedError } from '../src/actors/store/ordered-writer.js';

class Down extends Error {}

/** Lets the writer take what was added (it starts a batch at the end of the event loop's turn). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function fakeStore(refused: ReadonlySet<string> = new Set()) {
  const batches: string[][] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let gate: Promise<void> | undefined;
  let down = false;
  const write = async (items: readonly string[]): Promise<void> => {
    batches.push([...items]);
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      if (gate !== undefined) await gate;
      await Promise.resolve();
      if (down) throw new Down('the store is down');
      const bad = items.find((item) => refused.has(item));
      if (bad !== undefined) throw new Error(`refused ${bad}`);
    } finally {
      inFlight -= 1;
    }
  };
  const writer = createOrderedWriter<string>({
    write,
    keyOf: (item) => item.split(':')[0] ?? '',
    isUnavailable: (error) => error instanceof Down,
    retryMinMs: 100,
    retryMaxMs: 400,
    maxBatch: 4,
  });
  return {
    writer,
    batches,
    get maxInFlight() {
      return maxInFlight;
    },
    setDown(value: boolean) {
      down = value;
    },
    /** Holds every write from now on until the returned function is called. */
    hold(): () => void {
      let open!: () => void;
      gate = new Promise((resolve) => (open = resolve));
      return () => {
        gate = undefined;
        open();
      };
    },
  };
}

/** The outcome of each promise, without letting a rejection go unhandled. */
function outcomes(promises: Array<Promise<void>>): Promise<string[]> {
  return Promise.all(
    promises.map((promise) =>
      promise.then(
        () => 'ok',
        (error: unknown) => (error instanceof EarlierWriteFailedError ? 'earlier failed' : error instanceof Error ? error.message : String(error)),
      ),
    ),
  );
}

afterEach(() => {
  vi.useRealTimers();
});

describe('createOrderedWriter', () => {
  it('writes items added in the same tick as one batch, in order, one batch at a time', async () => {
    const store = fakeStore();
    const first = [store.writer.add('a:1'), store.writer.add('b:1'), store.writer.add('a:2')];
    await settle();
    const release = store.hold();
    const second = [store.writer.add('a:3'), store.writer.add('c:1')];
    await settle();
    const third = [store.writer.add('b:2')];
    release();
    expect(await outcomes([...first, ...second, ...third])).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
    expect(store.batches).toEqual([['a:1', 'b:1', 'a:2'], ['a:3', 'c:1'], ['b:2']]);
    expect(store.maxInFlight).toBe(1);
  });

  it('respects maxBatch and keeps the order across batches', async () => {
    const store = fakeStore();
    const items = Array.from({ length: 10 }, (_, i) => `k${i % 3}:${i}`);
    expect(await outcomes(items.map((item) => store.writer.add(item)))).toEqual(items.map(() => 'ok'));
    expect(store.batches.map((batch) => batch.length)).toEqual([4, 4, 2]);
    expect(store.batches.flat()).toEqual(items);
  });

  it('splits a refused batch by key: only the key at fault fails, and its later items are never written', async () => {
    const store = fakeStore(new Set(['a:2']));
    const results = outcomes([store.writer.add('a:1'), store.writer.add('b:1'), store.writer.add('a:2'), store.writer.add('c:1')]);
    const later = outcomes([store.writer.add('a:3'), store.writer.add('b:2')]);
    expect(await results).toEqual(['refused a:2', 'ok', 'refused a:2', 'ok']);
    expect(await later).toEqual(['earlier failed', 'ok']);
    // The batch, then each key alone (a, b, c), then what came later: a:3 is not even tried.
    expect(store.batches).toEqual([['a:1', 'b:1', 'a:2', 'c:1'], ['a:1', 'a:2'], ['b:1'], ['c:1'], ['b:2']]);
    expect(await outcomes([store.writer.add('a:4')])).toEqual(['earlier failed']);
  });

  it('fails the whole batch when the store is down, and the failed keys stay failed', async () => {
    const store = fakeStore();
    store.setDown(true);
    const results = await outcomes([store.writer.add('a:1'), store.writer.add('b:1')]);
    expect(results).toEqual(['the store is down', 'the store is down']);
    store.setDown(false);
    expect(await outcomes([store.writer.add('a:2'), store.writer.add('c:1')])).toEqual(['earlier failed', 'ok']);
    expect(store.batches).toEqual([['a:1', 'b:1'], ['c:1']]);
  });

  it('retries a durable item with backoff until the store is back, then clears its key', async () => {
    vi.useFakeTimers();
    const store = fakeStore();
    store.setDown(true);
    const failed = outcomes([store.writer.add('a:1')]);
    await vi.advanceTimersByTimeAsync(0);
    expect(await failed).toEqual(['the store is down']);
    let repaired = 'pending';
    void store.writer.addDurable('a:repair').then(() => (repaired = 'ok'));
    await vi.advanceTimersByTimeAsync(0);
    expect(store.batches).toEqual([['a:1'], ['a:repair']]);
    await vi.advanceTimersByTimeAsync(99);
    expect(store.batches).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1); // 100 ms: second try
    expect(store.batches).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(200); // then 200 ms
    expect(store.batches).toHaveLength(4);
    expect(repaired).toBe('pending');
    expect(store.writer.pendingCount).toBe(1);

    store.setDown(false);
    await vi.advanceTimersByTimeAsync(400);
    expect(repaired).toBe('ok');
    expect(store.batches.at(-1)).toEqual(['a:repair']);
    // The repair cleared the key: its later items are written again.
    const after = outcomes([store.writer.add('a:2')]);
    await vi.advanceTimersByTimeAsync(0);
    expect(await after).toEqual(['ok']);
  });

  it('writes a waiting durable item at once when another write succeeds, and writes durable items alone', async () => {
    vi.useFakeTimers();
    const store = fakeStore();
    store.setDown(true);
    void store.writer.addDurable('a:repair');
    await vi.advanceTimersByTimeAsync(0);
    store.setDown(false);
    const later = outcomes([store.writer.add('b:1'), store.writer.add('c:1')]);
    await vi.advanceTimersByTimeAsync(0);
    expect(await later).toEqual(['ok', 'ok']);
    await vi.advanceTimersByTimeAsync(0);
    expect(store.batches).toEqual([['a:repair'], ['b:1', 'c:1'], ['a:repair']]);
    expect(store.writer.pendingCount).toBe(0);
  });

  it('while the store is down, waiting durable items do not hold up ordinary ones: one probes per retry', async () => {
    vi.useFakeTimers();
    const store = fakeStore();
    store.setDown(true);
    const repairs = ['a', 'b', 'c', 'd', 'e'].map((key) => store.writer.addDurable(`${key}:repair`));
    const ordinary = outcomes([store.writer.add('f:1')]);
    await vi.advanceTimersByTimeAsync(0);
    // One repair tried and parked with the rest; the ordinary write had its own try at once.
    expect(store.batches).toEqual([['a:repair'], ['f:1']]);
    expect(await ordinary).toEqual(['the store is down']);
    const later = store.writer.addDurable('g:repair');
    await vi.advanceTimersByTimeAsync(100);
    expect(store.batches.slice(2)).toEqual([['a:repair']]); // the probe; g waited with the rest
    store.setDown(false);
    await vi.advanceTimersByTimeAsync(200);
    await Promise.all([...repairs, later]);
    expect(store.batches.slice(3).flat().sort()).toEqual(['a:repair', 'b:repair', 'c:repair', 'd:repair', 'e:repair', 'g:repair']);
  });

  it('on close, writes what is queued, gives durable items one last try, then refuses new items', async () => {
    const store = fakeStore();
    const queued = outcomes([store.writer.add('a:1'), store.writer.add('b:1')]);
    store.setDown(true);
    const repair = outcomes([store.writer.addDurable('c:repair')]);
    await store.writer.close();
    expect(await queued).toEqual(['the store is down', 'the store is down']);
    expect(await repair).toEqual(['the store is down']);
    await expect(store.writer.add('d:1')).rejects.toThrow(/closed/);
  });
});
