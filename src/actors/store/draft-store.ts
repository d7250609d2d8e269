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

/** Clock of {@link createDraftStore} (expiry is judged by it). */
export interface DraftStoreOptions {
  now?: () => Date;
}

/** Builds the draft store over `db`. */
export function createDraftStore(db: Kysely<DatabaseSchema>, options: DraftStoreOptions = {}): DraftStore {
  const now = options.now ?? (() => new Date());
  return {
    async saveDraft(conversationId, draft, expiresAt) {
      const json = JSON.stringify(draft);
      await db
        .insertInto('drafts')
        .values({ conversation_id: conversationId, draft: json, expires_at: expiresAt })
        .onConflict((oc) => oc.column('conversation_id').doUpdateSet({ draft: json, expires_at: expiresAt }))
        .execute();
    },

    async loadDraft(conversationId) {
      const row = await db
        .selectFrom('drafts')
        .select('draft')
        .where('conversation_id', '=', conversationId)
        .where('expires_at', '>', now())
        .executeTakeFirst();
      return row?.draft ?? null;
    },

    async clearDraft(conversationId) {
      await db.deleteFrom('drafts').where('conversation_id', '=', conversationId).execute();
    },
  };
}
