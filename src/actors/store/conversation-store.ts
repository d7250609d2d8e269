/**
 * Conversation history and ownership, read through small memory caches. Writes go through the store's
 * ordered writer; once one commits, the store tells this cache ({@link ConversationStoreInternals}).
 * Jobs of one conversation run one at a time (the conversation actor serializes them), so the cache only
 * has to stay correct against its own reads racing the writer's commits.
 */
import type { Kysely } from 'kysely';
import type { DatabaseSchema, MessageRole } from './schema.js';

/** A stored message, oldest first in every list. */
export interface StoredMessage {
  role: MessageRole;
  content: string;
  jobId: string | null;
  createdAt: Date;
}

/** Conversations and their history, as readers see them. */
export interface ConversationStore {
  /** The last `limit` messages in the order they were stored, oldest first; from memory when cached. */
  recentMessages(conversationId: string, limit: number): Promise<StoredMessage[]>;
  /** The owner id of a conversation, or null when it does not exist. Owners never change: cached. */
  conversationOwner(conversationId: string): Promise<string | null>;
  /** Drops every cached conversation (after a cleanup deleted rows underneath the cache). */
  clearCache(): void;
}

/** The cache controls, for the store that owns the writes (not for the rest of the system). */
export interface ConversationStoreInternals extends ConversationStore {
  /**
   * Adds a committed message to the cache. `created`: the message opened the conversation, so it is
   * the whole history and the cache can hold it without ever reading the table.
   */
  remember(conversationId: string, message: StoredMessage, created?: boolean): void;
  /** Caches a conversation that has just been created and is empty, before its first write commits. */
  knownEmpty(conversationId: string): void;
  /** Caches the owner of a conversation whose creation has committed. */
  knownOwner(conversationId: string, owner: string): void;
}

/** Tuning and clock of {@link createConversationStore}. */
export interface ConversationStoreOptions {
  /** Clock for the cache TTL. */
  now?: () => Date;
  /** A cached conversation not touched for this long is dropped (default 1 h). */
  cacheTtlMs?: number;
  /** Messages kept per cached conversation (default 80: 40 turns); longer reads go to the database. */
  cacheSize?: number;
  /**
   * Conversations whose history is kept in memory (default 1 000, least recently used dropped): a steady
   * stream of new conversations would otherwise grow the cache for a whole TTL.
   */
  cacheConversations?: number;
  /** Conversation owners kept in memory (default 10 000, least recently used dropped). */
  ownerCacheSize?: number;
}

interface CacheEntry {
  /** The last `cacheSize` messages (or all of them when there are fewer). */
  messages: StoredMessage[];
  lastUsed: number;
}

/** Builds the conversation reads over `db`; the caches live as long as the returned object. */
export function createConversationStore(
  db: Kysely<DatabaseSchema>,
  options: ConversationStoreOptions = {},
): ConversationStoreInternals {
  const now = options.now ?? (() => new Date());
  const ttlMs = options.cacheTtlMs ?? 60 * 60 * 1000;
  const cacheSize = options.cacheSize ?? 80;
  const cacheConversations = options.cacheConversations ?? 1_000;
  const ownerCacheSize = options.ownerCacheSize ?? 10_000;
  const cache = new Map<string, CacheEntry>();
  const owners = new Map<string, string>();
  // Loads in progress, shared by concurrent readers. A write during a load marks it stale, so a list
  // read before the write committed is returned but never cached.
  const loads = new Map<string, { promise: Promise<StoredMessage[]>; stale: boolean }>();
  let lastSweep = 0;

  function sweep(at: number): void {
    if (at - lastSweep < Math.min(ttlMs, 60_000)) return;
    lastSweep = at;
    // Oldest use first: the sweep stops at the first conversation still in use.
    for (const [id, entry] of cache) {
      if (at - entry.lastUsed < ttlMs) break;
      cache.delete(id);
    }
  }

  function cached(conversationId: string, at: number): CacheEntry | undefined {
    sweep(at);
    const entry = cache.get(conversationId);
    if (entry === undefined) return undefined;
    cache.delete(conversationId);
    if (at - entry.lastUsed >= ttlMs) return undefined;
    entry.lastUsed = at;
    cache.set(conversationId, entry); // the Map's order is the order of use: the first is the least recent
    return entry;
  }

  function keep(conversationId: string, entry: CacheEntry): void {
    cache.delete(conversationId);
    cache.set(conversationId, entry);
    if (cache.size > cacheConversations) cache.delete(cache.keys().next().value as string);
  }

  function keepOwner(conversationId: string, owner: string): void {
    owners.delete(conversationId);
    owners.set(conversationId, owner);
    if (owners.size > ownerCacheSize) owners.delete(owners.keys().next().value as string);
  }

  async function load(conversationId: string, limit: number): Promise<StoredMessage[]> {
    const rows = await db
      .selectFrom('messages')
      .select(['role', 'content', 'job_id', 'created_at'])
      .where('conversation_id', '=', conversationId)
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows
      .reverse()
      .map((row) => ({ role: row.role, content: row.content, jobId: row.job_id, createdAt: row.created_at }));
  }

  return {
    remember(conversationId, message, created = false) {
      const loading = loads.get(conversationId);
      if (loading !== undefined) loading.stale = true;
      const at = now().getTime();
      if (created && loading === undefined && !cache.has(conversationId)) {
        keep(conversationId, { messages: [message], lastUsed: at });
        return;
      }
      const entry = cached(conversationId, at);
      if (entry === undefined) return;
      entry.messages.push(message);
      if (entry.messages.length > cacheSize) entry.messages.splice(0, entry.messages.length - cacheSize);
    },

    knownEmpty(conversationId) {
      if (!cache.has(conversationId) && !loads.has(conversationId)) keep(conversationId, { messages: [], lastUsed: now().getTime() });
    },

    knownOwner: keepOwner,

    async conversationOwner(conversationId) {
      const known = owners.get(conversationId);
      if (known !== undefined) return known;
      const row = await db.selectFrom('conversations').select('owner').where('id', '=', conversationId).executeTakeFirst();
      if (row !== undefined) keepOwner(conversationId, row.owner);
      return row?.owner ?? null;
    },

    async recentMessages(conversationId, limit) {
      if (limit <= 0) return [];
      const at = now().getTime();
      const entry = cached(conversationId, at);
      if (entry !== undefined && limit <= cacheSize) return entry.messages.slice(-limit);
      if (limit > cacheSize) return load(conversationId, limit);

      let loading = loads.get(conversationId);
      if (loading === undefined) {
        const started = { promise: load(conversationId, cacheSize), stale: false };
        loading = started;
        loads.set(conversationId, started);
        started.promise
          .then((messages) => {
            if (!started.stale) keep(conversationId, { messages, lastUsed: now().getTime() });
          })
          .catch(() => undefined) // the reader awaiting the promise gets the error
          .finally(() => loads.delete(conversationId));
      }
      const messages = await loading.promise;
      return messages.slice(-limit);
    },

    clearCache() {
      cache.clear();
      owners.clear();
    },
  };
}
