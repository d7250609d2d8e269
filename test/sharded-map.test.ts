import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ShardedMap } from '../src/machines/sharded-map.js';

/**
 * The supervisor's immutable string-keyed map: every change returns a new map and leaves the old one as
 * it was (machine snapshots keep their values), `size` counts entries, and iteration covers every entry
 * whatever shard it hashed to. Only observable behaviour is tested (not how much a change copies).
 */

/** `n` distinct, deterministic UUID-like keys (hex 8-4-4-4-12, like the supervisor's job ids). */
function uuidLikeKeys(n: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    const hex = createHash('sha1').update(`key ${i}`).digest('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
  });
}

const sortedEntries = <V>(map: ShardedMap<V>): Array<[string, V]> => [...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

describe('ShardedMap', () => {
  it('starts empty', () => {
    const empty = ShardedMap.empty<number>();
    expect(empty.size).toBe(0);
    expect(empty.get('a')).toBeUndefined();
    expect(empty.has('a')).toBe(false);
    expect([...empty.entries()]).toEqual([]);
    expect([...empty.values()]).toEqual([]);
    // Each call is a map of its own (nothing is shared through a mutable singleton).
    expect(ShardedMap.empty<number>().set('a', 1).size).toBe(1);
    expect(ShardedMap.empty<number>().size).toBe(0);
  });

  it('set returns a new map and leaves the old one unchanged', () => {
    const empty = ShardedMap.empty<number>();
    const one = empty.set('a', 1);
    const two = one.set('b', 2);
    expect(one).not.toBe(empty);
    expect(two).not.toBe(one);

    expect([empty.size, one.size, two.size]).toEqual([0, 1, 2]);
    expect([empty.get('a'), one.get('a'), two.get('a')]).toEqual([undefined, 1, 1]);
    expect([empty.has('b'), one.has('b'), two.has('b')]).toEqual([false, false, true]);
    expect([...empty.entries()]).toEqual([]);
    expect([...one.entries()]).toEqual([['a', 1]]);
    expect(sortedEntries(two)).toEqual([
      ['a', 1],
      ['b', 2],
    ]);
  });

  it('set of a key it has replaces the value without growing, and the old map keeps the old value', () => {
    const before = ShardedMap.empty<string>().set('a', 'first').set('b', 'other');
    const after = before.set('a', 'second');
    expect(after).not.toBe(before);
    expect(after.size).toBe(2);
    expect(after.get('a')).toBe('second');
    expect(before.size).toBe(2);
    expect(before.get('a')).toBe('first');
    expect(sortedEntries(after)).toEqual([
      ['a', 'second'],
      ['b', 'other'],
    ]);
  });

  it('delete returns a new map without the key and leaves the old one unchanged', () => {
    const before = ShardedMap.empty<number>().set('a', 1).set('b', 2);
    const after = before.delete('a');
    expect(after).not.toBe(before);
    expect(after.size).toBe(1);
    expect(after.has('a')).toBe(false);
    expect(after.get('a')).toBeUndefined();
    expect(after.get('b')).toBe(2);
    expect([...after.entries()]).toEqual([['b', 2]]);
    expect(before.size).toBe(2);
    expect(before.get('a')).toBe(1);

    // Down to empty, then up again.
    const none = after.delete('b');
    expect(none.size).toBe(0);
    expect([...none.values()]).toEqual([]);
    expect(none.has('b')).toBe(false);
    const again = none.set('b', 3);
    expect([again.size, again.get('b')]).toEqual([1, 3]);
    expect(after.get('b')).toBe(2);
  });

  it('delete of a key it does not have returns the same map', () => {
    const empty = ShardedMap.empty<number>();
    expect(empty.delete('a')).toBe(empty);
    const one = empty.set('a', 1);
    expect(one.delete('b')).toBe(one);
    expect(one.delete('a').delete('a').size).toBe(0);
    // A deleted key is gone for good: deleting it again from the new map changes nothing.
    const gone = one.delete('a');
    expect(gone.delete('a')).toBe(gone);
  });

  it('keeps undefined values and keys that are special on plain objects', () => {
    const map = ShardedMap.empty<number | undefined>()
      .set('', 0)
      .set('__proto__', 1)
      .set('constructor', 2)
      .set('hasOwnProperty', 3)
      .set('ключ', 4)
      .set('undefined-value', undefined);
    expect(map.size).toBe(6);
    expect(['', '__proto__', 'constructor', 'hasOwnProperty', 'ключ'].map((key) => map.get(key))).toEqual([0, 1, 2, 3, 4]);
    expect(map.has('undefined-value')).toBe(true);
    expect(map.get('undefined-value')).toBeUndefined();
    expect(map.has('toString')).toBe(false);
    expect(map.get('toString')).toBeUndefined();
    expect(map.delete('undefined-value').size).toBe(5);
  });

  it('holds 1000 UUID-like keys: get, has, entries and values cover every one, across all shards', () => {
    const keys = uuidLikeKeys(1000);
    expect(new Set(keys).size).toBe(1000);
    let map = ShardedMap.empty<number>();
    const history: ShardedMap<number>[] = [];
    keys.forEach((key, index) => {
      map = map.set(key, index);
      history.push(map);
    });

    expect(map.size).toBe(1000);
    expect(keys.every((key, index) => map.has(key) && map.get(key) === index)).toBe(true);
    expect(map.has('00000000-0000-0000-0000-000000000000')).toBe(false);
    // A key that is not there, in a map whose every shard has entries: the same map comes back.
    expect(map.delete('00000000-0000-0000-0000-000000000000')).toBe(map);

    const entries = [...map.entries()];
    expect(entries).toHaveLength(1000);
    expect(new Map(entries)).toEqual(new Map(keys.map((key, index) => [key, index])));
    const values = [...map.values()];
    expect(values).toHaveLength(1000);
    expect(values.toSorted((a, b) => a - b)).toEqual(keys.map((_, index) => index));

    // Every earlier map still has exactly the keys set before it.
    for (const at of [0, 1, 63, 64, 500, 998]) {
      const earlier = history[at]!;
      expect(earlier.size).toBe(at + 1);
      expect([...earlier.entries()]).toHaveLength(at + 1);
      expect(earlier.has(keys[at]!)).toBe(true);
      expect(earlier.has(keys[at + 1]!)).toBe(false);
    }

    // Delete every other key: the rest stay, sizes and iteration agree.
    let half = map;
    keys.forEach((key, index) => {
      if (index % 2 === 0) half = half.delete(key);
    });
    expect(half.size).toBe(500);
    expect(keys.filter((key) => half.has(key))).toEqual(keys.filter((_, index) => index % 2 === 1));
    expect([...half.values()].toSorted((a, b) => a - b)).toEqual(keys.map((_, index) => index).filter((index) => index % 2 === 1));
    expect(map.size).toBe(1000);
    expect(map.get(keys[0]!)).toBe(0);

    // Overwriting every key keeps the size and changes every value.
    let doubled = half;
    for (const [key, value] of half.entries()) doubled = doubled.set(key, value * 2);
    expect(doubled.size).toBe(500);
    expect(keys.filter((_, index) => index % 2 === 1).every((key) => doubled.get(key) === 2 * half.get(key)!)).toBe(true);

    // And down to nothing.
    let none = doubled;
    for (const key of keys) none = none.delete(key);
    expect(none.size).toBe(0);
    expect([...none.entries()]).toEqual([]);
    expect(doubled.size).toBe(500);
  });
});
