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
import { createJobStore, type JobOutcome, type JobStore } from './job-store.js';
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
  /** The conversation id was made for this job: nothing else of it exists yet (lets caches skip a read). */
  newConversation?: boolean;
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
   * Like {@link JobStore.finishJob}, but batched: the ends of the jobs of one short window are written
   * together, each batch after a flush of the journal, so a job is never marked finished while its
   * terminal event (appended before this call) could still be lost in a crash. Resolves once written.
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
  /** How long job ends are gathered before one batch writes them (default 25 ms). */
  finishBatchMs?: number;
}

/**
 * Gathers job ends for a short window and writes them with one statement after flushing the journal:
 * on the embedded database every statement costs the event loop, and a job end is never urgent.
 */
function createFinishBatcher(journal: JobJournal, jobs: Pick<JobStore, 'finishJobs'>, windowMs: number) {
  type Waiting = { id: string; outcome: JobOutcome; resolve: (updated: boolean) => void; reject: (error: unknown) => void };
  let pending: Waiting[] = [];
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const write = async (batch: Waiting[]): Promise<void> => {
    try {
      await journal.flush();
      const updated = await jobs.finishJobs(batch);
      for (const item of batch) item.resolve(updated.has(item.id));
    } catch (error) {
      for (const item of batch) item.reject(error);
    }
  };
  const fire = (): Promise<void> => {
    clearTimeout(timer);
    timer = undefined;
    const batch = pending;
    pending = [];
    // One batch at a time, in order.
    running = running.then(() => (batch.length > 0 ? write(batch) : undefined));
    return running;
  };
  return {
    add(id: string, outcome: JobOutcome): Promise<boolean> {
      return new Promise<boolean>((resolve, reject) => {
        pending.push({ id, outcome, resolve, reject });
        if (pending.length >= 200) void fire();
        else timer ??= setTimeout(() => void fire(), windowMs);
      });
    },
    drain: (): Promise<void> => fire(),
  };
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
  const finisher = createFinishBatcher(journal, jobs, options.finishBatchMs ?? 25);

  return {
    journal,

    ensureConversation: conversations.ensureConversation,
    appendMessage: conversations.appendMessage,
    recentMessages: conversations.recentMessages,
    clearCache: conversations.clearCache,

    createJob: jobs.createJob,
    getJob: jobs.getJob,
    finishJob: (id, outcome) => finisher.add(id, outcome),
    finishJobs: jobs.finishJobs,

    saveDraft: drafts.saveDraft,
    loadDraft: drafts.loadDraft,
    clearDraft: drafts.clearDraft,

    upsertDocument: documents.upsertDocument,
    searchDocuments: documents.searchDocuments,
    readDocument: documents.readDocument,

    async acceptJob(input) {
      // One statement: the conversation (created or touched), the job row and the user's message land
      // together in one round trip. Foreign keys are checked at the end of the statement, when the
      // conversation of the CTE exists.
      const at = now();
      const { conversationId, source } = input;
      await db
        .with('conversation', (qb) =>
          qb
            .insertInto('conversations')
            .values({ id: conversationId, source, external_user: input.externalUser ?? null, created_at: at, updated_at: at })
            .onConflict((oc) => oc.column('id').doUpdateSet({ updated_at: at })),
        )
        .with('job', (qb) =>
          qb.insertInto('jobs').values({
            id: input.jobId,
            conversation_id: conversationId,
            source,
            mode: input.mode,
            owner: input.owner ?? 'anonymous',
            status: 'running',
            created_at: at,
          }),
        )
        .insertInto('messages')
        .values({ conversation_id: conversationId, role: 'user', content: input.text, job_id: input.jobId, created_at: at })
        .execute();
      const message = { role: 'user' as const, content: input.text, jobId: input.jobId, createdAt: at };
      conversations.remember(conversationId, message, input.newConversation === true);
      if (input.newConversation === true) drafts.knownEmpty(conversationId);
    },

    async cleanup(olderThanDays = 7) {
      const result = await cleanupOldRows(db, { olderThanDays, now: now() });
      conversations.clearCache();
      drafts.clearCache();
      return result;
    },

    close: async () => {
      await finisher.drain();
      await journal.close();
    },
  };
}
