/**
 * One row per job: where it came from, how it ended, and what it cost. The events of a job live in the
 * journal (`job-journal.ts`); this row is the summary used by `subscribe`, `/metrics` and restarts.
 */
import type { Kysely, Selectable, Transaction } from 'kysely';
import type { DatabaseSchema, JobSource, JobStatus, JobsTable } from './schema.js';

/** A job as it is recorded when accepted. */
export interface NewJob {
  id: string;
  conversationId: string;
  source: JobSource;
  /** `auto` or a mode name. */
  mode: string;
  /** The auth principal that submitted it (default `anonymous`). */
  owner?: string;
}

/** How a job ended. */
export interface JobOutcome {
  status: Exclude<JobStatus, 'running'>;
  /** The sanitized `reason` of an `error` (or why it was cancelled). */
  reason?: string | null;
  /** The branch the job took: `direct`, `clarify`, `tools`, `route`, `systemStatus`, … */
  branch?: string | null;
  /** Backend names that produced output for it, in order. */
  modelsUsed?: readonly string[];
  /** From acceptance to the first streamed byte. */
  firstByteMs?: number | null;
  /** From acceptance to the terminal event. */
  totalMs?: number | null;
}

/** A stored job. */
export interface JobRecord {
  id: string;
  conversationId: string;
  source: JobSource;
  mode: string;
  owner: string;
  status: JobStatus;
  branch: string | null;
  modelsUsed: string[];
  reason: string | null;
  createdAt: Date;
  firstByteMs: number | null;
  totalMs: number | null;
  finishedAt: Date | null;
}

/** Job rows. */
export interface JobStore {
  /** Records a `running` job. */
  createJob(job: NewJob): Promise<void>;
  /**
   * Records how a running job ended. Returns false when the job is unknown or already finished (a
   * finished job keeps its first outcome).
   */
  finishJob(id: string, outcome: JobOutcome): Promise<boolean>;
  /** The job, or null when unknown (or cleaned up). */
  getJob(id: string): Promise<JobRecord | null>;
}

/** Internals shared with the other parts of the store. */
export interface JobStoreInternals extends JobStore {
  /** Inserts a running job inside the caller's transaction. */
  insertJob(executor: Transaction<DatabaseSchema> | Kysely<DatabaseSchema>, job: NewJob): Promise<void>;
}

/** Clock of {@link createJobStore}. */
export interface JobStoreOptions {
  now?: () => Date;
}

/** Builds the job store over `db`. */
export function createJobStore(db: Kysely<DatabaseSchema>, options: JobStoreOptions = {}): JobStoreInternals {
  const now = options.now ?? (() => new Date());

  async function insertJob(
    executor: Transaction<DatabaseSchema> | Kysely<DatabaseSchema>,
    job: NewJob,
  ): Promise<void> {
    await executor
      .insertInto('jobs')
      .values({
        id: job.id,
        conversation_id: job.conversationId,
        source: job.source,
        mode: job.mode,
        owner: job.owner ?? 'anonymous',
        status: 'running',
        created_at: now(),
      })
      .execute();
  }

  return {
    insertJob,

    createJob: (job) => insertJob(db, job),

    async finishJob(id, outcome) {
      const result = await db
        .updateTable('jobs')
        .set({
          status: outcome.status,
          reason: outcome.reason ?? null,
          branch: outcome.branch ?? null,
          models_used: JSON.stringify(outcome.modelsUsed ?? []),
          first_byte_ms: roundMs(outcome.firstByteMs),
          total_ms: roundMs(outcome.totalMs),
          finished_at: now(),
        })
        .where('id', '=', id)
        .where('status', '=', 'running')
        .executeTakeFirst();
      return result.numUpdatedRows > 0n;
    },

    async getJob(id) {
      const row = await db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
      return row === undefined ? null : toJobRecord(row);
    },
  };
}

// The columns are integers; latencies measured with performance.now() carry fractions.
function roundMs(value: number | null | undefined): number | null {
  return value === null || value === undefined ? null : Math.round(value);
}

function toJobRecord(row: Selectable<JobsTable>): JobRecord {
  return {
    id: row.id,
    conversationId: row.conversation_id,
    source: row.source,
    mode: row.mode,
    owner: row.owner,
    status: row.status,
    branch: row.branch,
    modelsUsed: row.models_used,
    reason: row.reason,
    createdAt: row.created_at,
    firstByteMs: row.first_byte_ms,
    totalMs: row.total_ms,
    finishedAt: row.finished_at,
  };
}
