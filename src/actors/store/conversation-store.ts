/**
 * Conversation history, written through to the database and read through a small memory cache.
 * Jobs of one conversation run one at a time (the conversation actor serializes them), so the cache
 * only has to stay correct against its own reads racing its own writes.
 */
import type { Kysely, Transaction } from 'kysely';
import { createGroupCommit } from './group-commit.js';
import type { DatabaseSchema, JobSource, MessageRole } from './schema.js';

/** A message to append. */
export interface NewMessage {
  role: MessageRole;
  content: string;
  /** The job that produced (assistant) or received (user) it. */
  jobId?: string | null;
}

/** A stored message, oldest first in every list. */
export interface StoredMessage {
  role: MessageRole;
  content: string;
  jobId: string | null;
  createdAt: Date;
}

/** Conversations and their history. */
export interface ConversationStore {
  /** Creates the conversation unless it exists (then nothing changes). */
  ensureConversation(id: string, source: JobSource, externalUser?: string | null): Promise<void>;
  /**
   * Appends one message; resolves once it is committed. The conversation must exist. Messages appended
   * together are written with one statement, in the order of the calls.
   */
  appendMessage(conversationId: string, message: NewMessage): Promise<void>;
  /** The last `limit` messages, oldest first; served from memory when the conversation is cached. */
  recentMessages(conversationId: string, limit: number): Promise<StoredMessage[]>;
  /** Drops every cached conversation (after a cleanup deleted rows underneath the cache). */
  clearCache(): void;
}

/** Internals shared with the other parts of the store (not for the rest of the system). */
export interface ConversationStoreInternals extends ConversationStore {
  /** Inserts the conversation unless it exists, inside the caller's transaction. */
  insertConversation(
    trx: Transaction<DatabaseSchema> | Kysely<DatabaseSchema>,
    id: string,
    source: JobSource,
    externalUser: string | null,
  ): Promise<void>;
  /**
   * Adds a committed message to the cache. `created`: the message opened the conversation, so it is
   * the whole history and the cache can hold it without ever reading the table.
   */
  remember(conversationId: string, message: StoredMessage, created?: boolean): void;
  /** Caches a conversation that has just been created and is empty, before its first write commits. */
  knownEmpty(conversationId: string): void;
}

/** Tuning and clock of {@link createConversationStore}. */
export interface ConversationStoreOptions {
  /** Clock for timestamps and the cache TTL. */
  now?: () => Date;
  /** A cached conversation not touched for this long is dropped (default 1 h). */
  cacheTtlMs?: number;
  /** Messages kept per cached conversation (default 80: 40 turns); longer reads go to the database. */
  cacheSize?: number;
}

interface CacheEntry {
  /** The last `cacheSize` messages (or all of them when there are fewer). */
  messages: StoredMessage[];
  lastUsed: number;
}

/** Builds the conversation store over `db`; the cache lives as long as the returned object. */
export function createConversationStore(
  db: Kysely<DatabaseSchema>,
  options: ConversationStoreOptions = {},
): ConversationStoreInternals {
  const now = options.now ?? (() => new Date());
  const ttlMs = options.cacheTtlMs ?? 60 * 60 * 1000;
  const cacheSize = options.cacheSize ?? 80;
  const cache = new Map<string, CacheEntry>();
  // Loads in progress, shared by concurrent readers. A write during a load marks it stale, so a list
  // read before the write committed is returned but never cached.
  const loads = new Map<string, { promise: Promise<StoredMessage[]>; stale: boolean }>();
  let lastSweep = 0;

  function sweep(at: number): void {
    if (at - lastSweep < Math.min(ttlMs, 60_000)) return;
    lastSweep = at;
    for (const [id, entry] of cache) {
      if (at - entry.lastUsed >= ttlMs) cache.delete(id);
    }
  }

  function cached(conversationId: string, at: number): CacheEntry | undefined {
    sweep(at);
    const entry = cache.get(conversationId);
    if (entry === undefined) return undefined;
    if (at - entry.lastUsed >= ttlMs) {
      cache.delete(conversationId);
      return undefined;
    }
    entry.lastUsed = at;
    return entry;
  }

  async function insertConversation(
    executor: Transaction<DatabaseSchema> | Kysely<DatabaseSchema>,
    id: string,
    source: JobSource,
    externalUser: string | null,
  ): Promise<void> {
    const at = now();
    await executor
      .insertInto('conversations')
      .values({ id, source, external_user: externalUser, created_at: at, updated_at: at })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
  }

  /** Appended messages, written in batches: one statement inserts them and touches their conversations. */
  const appends = createGroupCommit<{ conversationId: string; message: StoredMessage }>(async (items) => {
    const conversationIds = [...new Set(items.map((item) => item.conversationId))];
    const touchedAt = items.at(-1)?.message.createdAt ?? now();
    await db
      .with('touched', (qb) => qb.updateTable('conversations').set({ updated_at: touchedAt }).where('id', 'in', conversationIds))
      .insertInto('messages')
      .values(
        items.map(({ conversationId, message }) => ({
          conversation_id: conversationId,
          role: message.role,
          content: message.content,
          job_id: message.jobId,
          created_at: message.createdAt,
        })),
      )
      .execute();
  });

  function remember(conversationId: string, message: StoredMessage, created = false): void {
    const loading = loads.get(conversationId);
    if (loading !== undefined) loading.stale = true;
    const at = now().getTime();
    if (created && loading === undefined && !cache.has(conversationId)) {
      cache.set(conversationId, { messages: [message], lastUsed: at });
      return;
    }
    const entry = cached(conversationId, at);
    if (entry === undefined) return;
    entry.messages.push(message);
    if (entry.messages.length > cacheSize) entry.messages.splice(0, entry.messages.length - cacheSize);
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
    insertConversation,
    remember,

    async ensureConversation(id, source, externalUser) {
      await insertConversation(db, id, source, externalUser ?? null);
    },

    async appendMessage(conversationId, message) {
      const stored: StoredMessage = { role: message.role, content: message.content, jobId: message.jobId ?? null, createdAt: now() };
      await appends.add({ conversationId, message: stored });
      remember(conversationId, stored);
    },

    knownEmpty(conversationId) {
      if (!cache.has(conversationId) && !loads.has(conversationId)) cache.set(conversationId, { messages: [], lastUsed: now().getTime() });
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
            if (!started.stale) cache.set(conversationId, { messages, lastUsed: now().getTime() });
          })
          .catch(() => undefined) // the reader awaiting the promise gets the error
          .finally(() => loads.delete(conversationId));
      }
      const messages = await loading.promise;
      return messages.slice(-limit);
    },

    clearCache() {
      cache.clear();
    },
  };
}
