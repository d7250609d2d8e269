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
import { createGroupCommit } from './group-commit.js';
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
   * atomically. Resolves once committed: only then may `accepted` be sent. The job may start before:
   * its own writes made meanwhile (answer, draft, end) wait for this one. Accepts made together share
   * one statement.
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

  // A job starts while its accept write commits (see `acceptJob`); its own later writes — the answer,
  // a draft, its end — wait for that write, so nothing of a job lands before the job and its message.
  const accepting = new Map<string, Promise<void>>();
  const acceptingConversations = new Map<string, Promise<void>>();
  /**
   * Waits for the accept of `jobId` (its failure is this write's failure: the job does not exist), or,
   * for writes that only name a conversation, for the conversation's latest accept — whose failure
   * concerns another job, so it is ignored: the conversation exists or the write fails on its own.
   */
  const afterAccept = async (jobId: string | undefined, conversationId: string | undefined): Promise<void> => {
    const byJob = jobId === undefined ? undefined : accepting.get(jobId);
    if (byJob !== undefined) return byJob;
    const byConversation = conversationId === undefined ? undefined : acceptingConversations.get(conversationId);
    if (byConversation !== undefined) await byConversation.catch(() => undefined);
  };

  /**
   * Accepted jobs, written in batches: one statement creates or touches the conversations, inserts the
   * job rows and the users' messages. Foreign keys are checked at the end of the statement, when the
   * conversations of the CTE exist.
   */
  const accepts = createGroupCommit<{ input: AcceptJobInput; at: Date }>(async (items) => {
    const conversationRows = new Map<string, { id: string; source: JobSource; external_user: string | null; created_at: Date; updated_at: Date }>();
    for (const { input, at } of items) {
      // One row per conversation: ON CONFLICT DO UPDATE may not touch a row twice in one statement.
      const first = conversationRows.get(input.conversationId);
      conversationRows.set(input.conversationId, {
        id: input.conversationId,
        source: first?.source ?? input.source,
        external_user: first?.external_user ?? input.externalUser ?? null,
        created_at: first?.created_at ?? at,
        updated_at: at,
      });
    }
    await db
      .with('conversation', (qb) =>
        qb
          .insertInto('conversations')
          .values([...conversationRows.values()])
          .onConflict((oc) => oc.column('id').doUpdateSet((eb) => ({ updated_at: eb.ref('excluded.updated_at') }))),
      )
      .with('job', (qb) =>
        qb.insertInto('jobs').values(
          items.map(({ input, at }) => ({
            id: input.jobId,
            conversation_id: input.conversationId,
            source: input.source,
            mode: input.mode,
            owner: input.owner ?? 'anonymous',
            status: 'running' as const,
            created_at: at,
          })),
        ),
      )
      .insertInto('messages')
      .values(items.map(({ input, at }) => ({ conversation_id: input.conversationId, role: 'user' as const, content: input.text, job_id: input.jobId, created_at: at })))
      .execute();
  });

  return {
    journal,

    ensureConversation: conversations.ensureConversation,
    async appendMessage(conversationId, message) {
      const jobId = message.jobId ?? undefined;
      await afterAccept(jobId, jobId === undefined ? conversationId : undefined);
      return conversations.appendMessage(conversationId, message);
    },
    recentMessages: conversations.recentMessages,
    clearCache: conversations.clearCache,

    createJob: jobs.createJob,
    getJob: jobs.getJob,
    finishJob: async (id, outcome) => {
      try {
        await afterAccept(id, undefined);
      } catch {
        return false; // never accepted: there is no row to finish
      }
      return finisher.add(id, outcome);
    },
    finishJobs: jobs.finishJobs,

    async saveDraft(conversationId, draft, expiresAt) {
      await afterAccept(undefined, conversationId);
      return drafts.saveDraft(conversationId, draft, expiresAt);
    },
    loadDraft: drafts.loadDraft,
    async clearDraft(conversationId) {
      await afterAccept(undefined, conversationId);
      return drafts.clearDraft(conversationId);
    },

    upsertDocument: documents.upsertDocument,
    searchDocuments: documents.searchDocuments,
    readDocument: documents.readDocument,

    acceptJob(input) {
      const at = now();
      if (input.newConversation === true) {
        // Nothing of it exists yet: readers racing this write need not ask the database.
        conversations.knownEmpty(input.conversationId);
        drafts.knownEmpty(input.conversationId);
      }
      const written = accepts.add({ input, at }).then(() => {
        const message = { role: 'user' as const, content: input.text, jobId: input.jobId, createdAt: at };
        conversations.remember(input.conversationId, message, input.newConversation === true);
      });
      void written
        .catch(() => undefined)
        .finally(() => {
          if (accepting.get(input.jobId) === written) accepting.delete(input.jobId);
          if (acceptingConversations.get(input.conversationId) === written) acceptingConversations.delete(input.conversationId);
        });
      accepting.set(input.jobId, written);
      acceptingConversations.set(input.conversationId, written);
      return written;
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
