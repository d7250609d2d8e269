/**
 * The database as kysely sees it, one interface per table (columns in snake_case, as in SQL).
 * `migrations/` is the truth; this file describes the schema after the latest migration.
 */
import type { ColumnType, Generated } from 'kysely';

/** Where a conversation or job came from. */
export type JobSource = 'ws' | 'openai' | 'synology';

/** The lifecycle of a job row; `running` until the job's terminal event. */
export type JobStatus = 'running' | 'done' | 'error' | 'cancelled';

/** Who wrote a message of a conversation's history. */
export type MessageRole = 'user' | 'assistant';

/**
 * A jsonb column: read back as parsed JSON; written as a JSON *string*. Both drivers pass a string
 * through unchanged, whereas node-postgres would turn a JS array into a PostgreSQL array literal.
 */
type Jsonb<T> = ColumnType<T, string, string>;

/** A timestamptz column: both drivers return a `Date`. */
type Timestamp = ColumnType<Date, Date, Date>;

/** A timestamptz column with a default. */
type GeneratedTimestamp = ColumnType<Date, Date | undefined, Date>;

/**
 * bigserial: node-postgres returns int8 as a string, PGlite as a number. Only used for ordering, so the
 * representation never leaves the store.
 */
type BigSerial = ColumnType<string | number, never, never>;

/** One per conversation (a WebSocket conversation id, a Synology user, …). */
export interface ConversationsTable {
  id: string;
  /** The owner id (see `src/transport/owner-id.ts`): only its owner may read or continue it. */
  owner: ColumnType<string, string | undefined, string>;
  source: JobSource;
  external_user: string | null;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

/** The history of conversations, in insertion (id) order. */
export interface MessagesTable {
  id: BigSerial;
  conversation_id: string;
  role: MessageRole;
  content: string;
  job_id: string | null;
  created_at: GeneratedTimestamp;
}

/** One per job: its origin, outcome and latencies. */
export interface JobsTable {
  id: string;
  conversation_id: string;
  source: JobSource;
  mode: string;
  /** The owner id, as for conversations; never a raw token. */
  owner: ColumnType<string, string | undefined, string>;
  /** The `clientMsgId` of the chat that made it: a repeated one finds this job. */
  client_msg_id: ColumnType<string | null, string | null | undefined, string | null>;
  status: JobStatus;
  branch: string | null;
  models_used: ColumnType<string[], string | undefined, string>;
  reason: string | null;
  created_at: GeneratedTimestamp;
  first_byte_ms: number | null;
  total_ms: number | null;
  finished_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  /** The flight recorder's steps (`TraceStep[]`, see `src/jobs/job-trace.ts`), written with the job's end. */
  trace: ColumnType<unknown, string | null | undefined, string | null>;
}

/** The journal: every event of every job, keyed by (job_id, seq). */
export interface JobEventsTable {
  job_id: string;
  seq: number;
  event: string;
  data: Jsonb<Record<string, unknown>>;
  at: Timestamp;
}

/** The pending tool draft of a conversation. */
export interface DraftsTable {
  conversation_id: string;
  draft: Jsonb<Record<string, unknown>>;
  expires_at: Timestamp;
}

/** Searchable documents (`npm run ingest`). */
export interface DocumentsTable {
  id: string;
  title: string;
  path: string | null;
  body: string;
  /** Generated from title and body; never written. Its text form is of no use to the application. */
  tsv: ColumnType<string, never, never>;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

/** A reply owed to a Synology Chat user, until its last part is posted (no URL, no token: see migration 0003). */
export interface SynologyDeliveriesTable {
  id: string;
  seq: BigSerial;
  user_id: string;
  job_id: ColumnType<string | null, string | null | undefined, string | null>;
  language: 'ko' | 'en';
  state: 'waiting' | 'sending';
  parts: ColumnType<string[], string | undefined, string>;
  next_part: ColumnType<number, number | undefined, number>;
  attempts: ColumnType<number, number | undefined, number>;
  created_at: GeneratedTimestamp;
}

/** The whole database, for `Kysely<DatabaseSchema>`. */
export interface DatabaseSchema {
  conversations: ConversationsTable;
  messages: MessagesTable;
  jobs: JobsTable;
  job_events: JobEventsTable;
  drafts: DraftsTable;
  documents: DocumentsTable;
  synology_deliveries: SynologyDeliveriesTable;
}
