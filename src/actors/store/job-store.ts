/**
 * One row per job: where it came from, how it ended, and what it cost. The events of a job live in the
 * journal (`job-journal.ts`); this row is the summary used by `subscribe`, `/metrics` and restarts.
 */
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
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
  /** Records how several running jobs ended, in one statement; returns the ids it updated. */
  finishJobs(list: ReadonlyArray<{ id: string; outcome: JobOutcome }>): Promise<Set<string>>;
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

    async finishJobs(list) {
      if (list.length === 0) return new Set();
      const at = now();
      const rows = list.map(
        ({ id, outcome }) =>
          sql`(${id}, ${outcome.status}, ${outcome.reason ?? null}, ${outcome.branch ?? null}, ${JSON.stringify(outcome.modelsUsed ?? [])}, ${roundMs(outcome.firstByteMs)}, ${roundMs(outcome.totalMs)})`,
      );
      // One statement for the whole batch. VALUES columns of untyped parameters come out as text: cast.
      const result = await sql<{ id: string }>`
        update jobs as j set
          status = v.status,
          reason = v.reason,
          branch = v.branch,
          models_used = v.models_used::jsonb,
          first_byte_ms = v.first_byte_ms::integer,
          total_ms = v.total_ms::integer,
          finished_at = ${at}
        from (values ${sql.join(rows)}) as v(id, status, reason, branch, models_used, first_byte_ms, total_ms)
        where j.id = v.id and j.status = 'running'
        returning j.id`.execute(db);
      return new Set(result.rows.map((row) => row.id));
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
