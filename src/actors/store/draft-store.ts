/**
 * Pending tool drafts (a calendar entry waiting for yes/no), one per conversation. Stored so a draft
 * survives a restart; expired drafts read as absent and are deleted by the cleanup.
 */
import type { Kysely } from 'kysely';
import type { DatabaseSchema } from './schema.js';

/** Drafts waiting for a yes/no. */
export interface DraftStore {
  /** Stores (or replaces) the conversation's draft. The conversation must exist. */
  saveDraft(conversationId: string, draft: Readonly<Record<string, unknown>>, expiresAt: Date): Promise<void>;
  /** The draft, or null when there is none or it has expired. Validate it (zod) before use. */
  loadDraft(conversationId: string): Promise<Record<string, unknown> | null>;
  /** Removes the draft (answered, cancelled or replaced by a new request). */
  clearDraft(conversationId: string): Promise<void>;
}

/** The draft store with its cache controls, for the store that owns it. */
export interface DraftStoreInternals extends DraftStore {
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
    async saveDraft(conversationId, draft, expiresAt) {
      const json = JSON.stringify(draft);
      await db
        .insertInto('drafts')
        .values({ conversation_id: conversationId, draft: json, expires_at: expiresAt })
        .onConflict((oc) => oc.column('conversation_id').doUpdateSet({ draft: json, expires_at: expiresAt }))
        .execute();
      keep(conversationId, { draft: JSON.parse(json) as Record<string, unknown>, expiresAt });
    },

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

    async clearDraft(conversationId) {
      await db.deleteFrom('drafts').where('conversation_id', '=', conversationId).execute();
      keep(conversationId, null);
    },

    knownEmpty(conversationId) {
      keep(conversationId, null);
    },

    clearCache() {
      cache.clear();
    },
  };
}
