/**
 * Pending tool drafts (a calendar entry waiting for yes/no), one per conversation. Stored so a draft
 * survives a restart; expired drafts read as absent and are deleted by the cleanup. Saving and clearing
 * go through the store's ordered writer, in order with the job's events; this file reads them.
 */
import type { Kysely } from 'kysely';
import type { DatabaseSchema } from './schema.js';

/** Drafts waiting for a yes/no, as readers see them. */
export interface DraftStore {
  /** The draft, or null when there is none or it has expired. Validate it (zod) before use. */
  loadDraft(conversationId: string): Promise<Record<string, unknown> | null>;
}

/** The draft cache with its controls, for the store that owns the writes (they go through its writer). */
export interface DraftStoreInternals extends DraftStore {
  /** A draft change has committed: `null` when the draft was cleared. */
  remember(conversationId: string, draft: { draft: Record<string, unknown>; expiresAt: Date } | null): void;
  /** The conversation was just created: it has no draft (no read needed). */
  knownEmpty(conversationId: string): void;
  clearCache(): void;
}

/** Clock of {@link createDraftStore} (expiry is judged by it). */
export interface DraftStoreOptions {
  now?: () => Date;
  /** Conversations whose draft (or its absence) is kept in memory (default 10 000). */
  cacheSize?: number;
}

interface CachedDraft {
  draft: Record<string, unknown>;
  expiresAt: Date;
}

/** Builds the draft store over `db`. */
export function createDraftStore(db: Kysely<DatabaseSchema>, options: DraftStoreOptions = {}): DraftStoreInternals {
  const now = options.now ?? (() => new Date());
  const cacheSize = options.cacheSize ?? 10_000;
  // Write-through: every job asks for its conversation's draft, and almost always there is none.
  const cache = new Map<string, CachedDraft | null>();
  const keep = (conversationId: string, value: CachedDraft | null): void => {
    cache.delete(conversationId);
    cache.set(conversationId, value);
    if (cache.size > cacheSize) cache.delete(cache.keys().next().value as string);
  };
  const fresh = (value: CachedDraft | null): Record<string, unknown> | null =>
    value !== null && value.expiresAt.getTime() > now().getTime() ? value.draft : null;

  return {
    remember: keep,

    async loadDraft(conversationId) {
      const cached = cache.get(conversationId);
      if (cached !== undefined) return fresh(cached);
      const row = await db
        .selectFrom('drafts')
        .select(['draft', 'expires_at'])
        .where('conversation_id', '=', conversationId)
        .executeTakeFirst();
      const value = row ? { draft: row.draft, expiresAt: row.expires_at } : null;
      keep(conversationId, value);
      return fresh(value);
    },

    knownEmpty(conversationId) {
      keep(conversationId, null);
    },

    clearCache() {
      cache.clear();
    },
  };
}
