/**
 * The narrow interface the rest of Switchboard uses for persistence, and the factory that builds it
 * over an open database. Each part lives in its own file; this one adds the operations that span
 * parts (accepting a job, finishing one, retention).
 */
import type { Kysely } from 'kysely';
import { cleanupOldRows, type CleanupResult } from './cleanup-old-rows.js';
import { createConversationStore, type ConversationStore } from './conversation-store.js';
import { createDocumentStore, type DocumentStore } from './document-store.js';
import { createDraftStore, type DraftStore } from './draft-store.js';
import { createJobJournal, type JobJournal, type JobJournalOptions } from './job-journal.js';
import { createJobStore, type JobStore } from './job-store.js';
import type { DatabaseSchema, JobSource } from './schema.js';

/** What is recorded, in one transaction, before `accepted` is sent. */
export interface AcceptJobInput {
  jobId: string;
  conversationId: string;
  source: JobSource;
  /** Synology `user_id`, OpenAI `user`, … */
  externalUser?: string | null;
  /** `auto` or a mode name. */
  mode: string;
  /** The auth principal that submitted it. */
  owner?: string;
  /** The user's message. */
  text: string;
}

/** Everything persistent: conversations, jobs, the event journal, drafts and documents. */
export interface Store extends ConversationStore, JobStore, DraftStore, DocumentStore {
  readonly journal: JobJournal;
  /**
   * Creates the conversation if needed, records the job as `running` and appends the user's message,
   * atomically. Resolves once committed: only then may `accepted` be sent.
   */
  acceptJob(input: AcceptJobInput): Promise<void>;
  /**
   * Like {@link JobStore.finishJob}, but first flushes the journal, so a job is never marked finished
   * while its terminal event (appended before this call) could still be lost in a crash.
   */
  finishJob: JobStore['finishJob'];
  /** Deletes rows past retention (default 7 days) and expired drafts; empties the history cache. */
  cleanup(olderThanDays?: number): Promise<CleanupResult>;
  /** Flushes the journal. The database stays open: its owner closes it. */
  close(): Promise<void>;
}

/** Options of {@link createStore}. */
export interface StoreOptions {
  /** Clock for every timestamp the store writes (tests move it). */
  now?: () => Date;
  /** Idle time after which a conversation leaves the history cache (default 1 h). */
  cacheTtlMs?: number;
  /** Messages cached per conversation (default 80). */
  cacheSize?: number;
  /** Batching of the journal; `onError` gets failed background writes. */
  journal?: Omit<JobJournalOptions, 'now'>;
}

/** Builds the store over an open, migrated database. */
export function createStore(db: Kysely<DatabaseSchema>, options: StoreOptions = {}): Store {
  const now = options.now ?? (() => new Date());
  const conversations = createConversationStore(db, {
    now,
    ...(options.cacheTtlMs !== undefined && { cacheTtlMs: options.cacheTtlMs }),
    ...(options.cacheSize !== undefined && { cacheSize: options.cacheSize }),
  });
  const jobs = createJobStore(db, { now });
  const journal = createJobJournal(db, { ...options.journal, now });
  const drafts = createDraftStore(db, { now });
  const documents = createDocumentStore(db, { now });

  return {
    journal,

    ensureConversation: conversations.ensureConversation,
    appendMessage: conversations.appendMessage,
    recentMessages: conversations.recentMessages,
    clearCache: conversations.clearCache,

    createJob: jobs.createJob,
    getJob: jobs.getJob,
    async finishJob(id, outcome) {
      await journal.flush();
      return jobs.finishJob(id, outcome);
    },

    saveDraft: drafts.saveDraft,
    loadDraft: drafts.loadDraft,
    clearDraft: drafts.clearDraft,

    upsertDocument: documents.upsertDocument,
    searchDocuments: documents.searchDocuments,
    readDocument: documents.readDocument,

    async acceptJob(input) {
      // Only `trx` inside: PGlite has a single connection, and `db` would wait for it forever.
      const message = await db.transaction().execute(async (trx) => {
        const { conversationId, source } = input;
        await conversations.insertConversation(trx, conversationId, source, input.externalUser ?? null);
        await jobs.insertJob(trx, {
          id: input.jobId,
          conversationId: input.conversationId,
          source: input.source,
          mode: input.mode,
          ...(input.owner === undefined ? {} : { owner: input.owner }),
        });
        return conversations.insertMessage(trx, input.conversationId, {
          role: 'user',
          content: input.text,
          jobId: input.jobId,
        });
      });
      conversations.remember(input.conversationId, message);
    },

    async cleanup(olderThanDays = 7) {
      const result = await cleanupOldRows(db, { olderThanDays, now: now() });
      conversations.clearCache();
      return result;
    },

    close: () => journal.close(),
  };
}
