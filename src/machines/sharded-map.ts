const SHARDS = 64;

/** FNV-1a over the key's characters: spreads UUIDs (and anything else) evenly over the shards. */
function shardOf(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % SHARDS;
}

/**
 * An immutable string-keyed map for machine context that changes often and grows large. A change copies
 * the shard array (64 slots) and one shard instead of every entry, so with a thousand jobs in flight a
 * change costs about 80 copies, not a thousand; earlier snapshots keep their values.
 */
export class ShardedMap<V> {
  private constructor(
    private readonly shards: ReadonlyArray<ReadonlyMap<string, V> | undefined>,
    /** Number of entries. */
    readonly size: number,
  ) {}

  static empty<V>(): ShardedMap<V> {
    return new ShardedMap<V>(new Array<undefined>(SHARDS).fill(undefined), 0);
  }

  get(key: string): V | undefined {
    return this.shards[shardOf(key)]?.get(key);
  }

  has(key: string): boolean {
    return this.shards[shardOf(key)]?.has(key) ?? false;
  }

  /** A map with `key` set to `value`. */
  set(key: string, value: V): ShardedMap<V> {
    const index = shardOf(key);
    const shard = new Map(this.shards[index]);
    const added = shard.has(key) ? 0 : 1;
    shard.set(key, value);
    return new ShardedMap(this.shards.with(index, shard), this.size + added);
  }

  /** A map without `key` (this one when it has no such key). */
  delete(key: string): ShardedMap<V> {
    const index = shardOf(key);
    const current = this.shards[index];
    if (!current?.has(key)) return this;
    const shard = new Map(current);
    shard.delete(key);
    return new ShardedMap(this.shards.with(index, shard.size === 0 ? undefined : shard), this.size - 1);
  }

  *entries(): IterableIterator<[string, V]> {
    for (const shard of this.shards) if (shard) yield* shard.entries();
  }

  *values(): IterableIterator<V> {
    for (const shard of this.shards) if (shard) yield* shard.values();
  }
}
