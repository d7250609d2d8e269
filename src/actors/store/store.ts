/**
 * The narrow interface the rest of Switchboard uses for persistence, and the factory that builds it
 * over an open database. Everything written on the hot path — accepted messages, journal events (with
 * the job's end and its answer), drafts — goes through one ordered writer (`ordered-writer.ts`), one
 * statement per batch (`write-batch.ts`); reads go to the database through small caches that the
 * writer's commits keep current.
 */
import { sql, type Kysely } from 'kysely';
import { cleanupOldRows, type CleanupResult } from './cleanup-old-rows.js';
import { createConversationStore, type ConversationStore, type StoredMessage } from './conversation-store.js';
import { createDocumentStore, type DocumentStore } from './document-store.js';
import { createDraftStore, type DraftStore } from './draft-store.js';
import { createJobJournal, type JobJournal } from './job-journal.js';
import { createJobStore, type JobStore } from './job-store.js';
import { createOrderedWriter } from './ordered-writer.js';
import type { DatabaseSchema, JobSource } from './schema.js';
import { RecentClientMsgIds } from './recent-client-msg-ids.js';
import { createSynologyDeliveryStore, type SynologyDeliveryStore } from './synology-delivery-store.js';
import { isStoreUnavailable, StoreUnavailableError } from './store-errors.js';
import { writeBatch, type StoreWrite } from './write-batch.js';
import type { TraceStep } from '../../jobs/job-trace.js';

/** What is recorded, in one statement, before `accepted` is sent. */
export interface AcceptJobInput {
  jobId: string;
  conversationId: string;
  source: JobSource;
  /** Synology `user_id`, OpenAI `user`, … */
  externalUser?: string | null;
  /** `auto` or a mode name. */
  mode: string;
  /** The owner id of the submitter (never a raw token). */
  owner: string;
  /** The user's message. */
  text: string;
  /** The chat's `clientMsgId`, so a repeated one finds this job. */
  clientMsgId?: string | null;
  /** The conversation id was made for this job: nothing else of it exists yet (lets caches skip a read). */
  newConversation?: boolean;
  /** Nobody reads this conversation back (an OpenAI API request): it is written, not cached. */
  stateless?: boolean;
}

/** Everything persistent: conversations, jobs, the event journal, drafts and documents. */
export interface Store extends ConversationStore, JobStore, DraftStore, DocumentStore {
  readonly journal: JobJournal;
  /** Replies owed to Synology Chat users, kept until posted. */
  readonly synologyDeliveries: SynologyDeliveryStore;
  /**
   * Creates the conversation (or touches it), records the job as `running` and appends the user's
   * message, in one statement. Resolves once committed: only then may `accepted` be sent. The job may
   * start before: everything it writes goes through the same ordered writer, after this.
   */
  acceptJob(input: AcceptJobInput): Promise<void>;
  /** Stores (or replaces) the conversation's draft, in order with the writes of job `jobId`. */
  saveDraft(jobId: string, conversationId: string, draft: Readonly<Record<string, unknown>>, expiresAt: Date): Promise<void>;
  /** Removes the conversation's draft, in order with the writes of job `jobId`. */
  clearDraft(jobId: string, conversationId: string): Promise<void>;
  /**
   * Checks that the database answers, within `timeoutMs` (default 1 s); rejects with
   * `StoreUnavailableError` otherwise. Concurrent checks share one statement.
   */
  ping(timeoutMs?: number): Promise<void>;
  /**
   * Loads the `clientMsgId`s of the jobs of the last window (see `clientMsgIdWindowMs`) into memory, so
   * that a chat that is not a repeat — nearly every chat — needs no read to find that out. For start-up.
   */
  loadRecentClientMsgIds(): Promise<void>;
  /** Deletes rows past retention (default 7 days) and expired drafts; empties the caches. */
  cleanup(olderThanDays?: number): Promise<CleanupResult>;
  /** Writes what is queued. The database stays open: its owner closes it. */
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
  /** Conversations whose history is cached (default 1 000, least recently used dropped). */
  cacheConversations?: number;
  /** Writes per statement (default 200). */
  maxBatch?: number;
  /** How far back a repeated `clientMsgId` finds its job (default 24 h, DESIGN §4). */
  clientMsgIdWindowMs?: number;
  /**
   * The flight recorder: the transitions a job took, asked for (and handed over) when its end is
   * journaled; they are stored in its row with the end.
   */
  traceOf?: (jobId: string) => readonly TraceStep[] | undefined;
  /** Sees, per write committed, how long it waited in the ordered writer (the journal batch lag metric). */
  onWriteCommitted?: (waitedMs: number) => void;
}

/** Builds the store over an open, migrated database. */
export function createStore(db: Kysely<DatabaseSchema>, options: StoreOptions = {}): Store {
  const now = options.now ?? (() => new Date());
  const conversations = createConversationStore(db, {
    now,
    ...(options.cacheTtlMs !== undefined && { cacheTtlMs: options.cacheTtlMs }),
    ...(options.cacheSize !== undefined && { cacheSize: options.cacheSize }),
    ...(options.cacheConversations !== undefined && { cacheConversations: options.cacheConversations }),
  });
  const jobs = createJobStore(db);
  const drafts = createDraftStore(db, { now });
  const documents = createDocumentStore(db, { now });
  const writer = createOrderedWriter<StoreWrite>({
    write: (items) => writeBatch(db, items),
    keyOf: (item) => item.jobId,
    isUnavailable: isStoreUnavailable,
    ...(options.maxBatch !== undefined && { maxBatch: options.maxBatch }),
    ...(options.onWriteCommitted !== undefined && { onCommitted: options.onWriteCommitted }),
  });
  const journal = createJobJournal(db, writer, { now, traceOf: options.traceOf });
  const clientMsgIdWindowMs = options.clientMsgIdWindowMs ?? 24 * 60 * 60 * 1000;
  const recentClientMsgIds = new RecentClientMsgIds(clientMsgIdWindowMs);

  /**
   * Answers on their way to the database, by conversation: a history read waits for them, so the next
   * job of a conversation (which starts as soon as the previous one has published its end) sees the
   * previous answer.
   */
  const answering = new Map<string, Promise<unknown>>();

  /**
   * Jobs being erased after their accept was reported failed (it may have committed all the same): a
   * client retrying the chat must not be handed one of them.
   */
  const erasing = new Set<string>();

  let pinging: Promise<void> | undefined;

  return {
    synologyDeliveries: createSynologyDeliveryStore(db, { now }),

    journal: {
      ...journal,
      append(jobId, event, end) {
        const written = journal.append(jobId, event, end);
        const answer = end?.answer;
        if (answer === undefined) return written;
        const remembered = written.then(() => {
          const message: StoredMessage = { role: 'assistant', content: answer.content, jobId, createdAt: new Date(event.at) };
          conversations.remember(answer.conversationId, message);
        });
        const settled = remembered.catch(() => undefined);
        answering.set(answer.conversationId, settled);
        void settled.then(() => {
          if (answering.get(answer.conversationId) === settled) answering.delete(answer.conversationId);
        });
        return remembered;
      },
      erase(jobId) {
        recentClientMsgIds.remove(jobId);
        erasing.add(jobId);
        const erased = journal.erase(jobId);
        void erased.catch(() => undefined).finally(() => erasing.delete(jobId));
        return erased;
      },
    },

    async recentMessages(conversationId, limit) {
      const pending = answering.get(conversationId);
      if (pending !== undefined) await pending;
      return conversations.recentMessages(conversationId, limit);
    },
    conversationOwner: conversations.conversationOwner,
    clearCache: conversations.clearCache,

    getJob: jobs.getJob,
    getJobTrace: jobs.getJobTrace,
    async findJobByClientMsgId(owner, clientMsgId, since) {
      const known = recentClientMsgIds.find(owner, clientMsgId, since);
      const found = known === undefined ? await jobs.findJobByClientMsgId(owner, clientMsgId, since) : known;
      return found !== null && erasing.has(found.jobId) ? null : found;
    },

    async loadRecentClientMsgIds() {
      const windowStart = new Date(now().getTime() - clientMsgIdWindowMs);
      const limit = 50_000;
      const rows = await db
        .selectFrom('jobs')
        .select(['id', 'conversation_id', 'owner', 'client_msg_id', 'created_at'])
        .where('client_msg_id', 'is not', null)
        .where('created_at', '>=', windowStart)
        .orderBy('created_at', 'desc')
        .limit(limit)
        .execute();
      const oldestFirst = rows.reverse().map((row) => ({
        jobId: row.id,
        conversationId: row.conversation_id,
        owner: row.owner,
        clientMsgId: row.client_msg_id as string,
        createdAt: row.created_at,
      }));
      recentClientMsgIds.load(oldestFirst, windowStart, rows.length < limit);
    },

    loadDraft: drafts.loadDraft,
    async saveDraft(jobId, conversationId, draft, expiresAt) {
      const json = JSON.stringify(draft);
      await writer.add({ kind: 'draft', jobId, conversationId, json, expiresAt });
      drafts.remember(conversationId, { draft: JSON.parse(json) as Record<string, unknown>, expiresAt });
    },
    async clearDraft(jobId, conversationId) {
      await writer.add({ kind: 'draft', jobId, conversationId, json: null, expiresAt: null });
      drafts.remember(conversationId, null);
    },

    upsertDocument: documents.upsertDocument,
    searchDocuments: documents.searchDocuments,
    readDocument: documents.readDocument,

    acceptJob(input) {
      const at = now();
      const created = input.newConversation === true;
      if (created && input.stateless !== true) {
        // Nothing of it exists yet: readers racing this write need not ask the database.
        conversations.knownEmpty(input.conversationId);
        drafts.knownEmpty(input.conversationId);
      }
      const written = writer.add({
        kind: 'accept',
        jobId: input.jobId,
        conversationId: input.conversationId,
        owner: input.owner,
        source: input.source,
        externalUser: input.externalUser ?? null,
        mode: input.mode,
        text: input.text,
        clientMsgId: input.clientMsgId ?? null,
        at,
      });
      if (input.stateless === true) return written;
      return written.then(() => {
        conversations.remember(input.conversationId, { role: 'user', content: input.text, jobId: input.jobId, createdAt: at }, created);
        if (created) conversations.knownOwner(input.conversationId, input.owner);
        if (input.clientMsgId != null) recentClientMsgIds.add(input.owner, input.clientMsgId, input, at);
      });
    },

    ping(timeoutMs = 1_000) {
      pinging ??= sql`select 1`
        .execute(db)
        .then(() => undefined)
        .finally(() => (pinging = undefined));
      const check = pinging;
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new StoreUnavailableError(`the database did not answer within ${timeoutMs} ms`)), timeoutMs);
        check.then(
          () => (clearTimeout(timer), resolve()),
          (error: unknown) => (clearTimeout(timer), reject(error)),
        );
      });
    },

    async cleanup(olderThanDays = 7) {
      const result = await cleanupOldRows(db, { olderThanDays, now: now() });
      conversations.clearCache();
      drafts.clearCache();
      return result;
    },

    close: () => writer.close(),
  };
}
