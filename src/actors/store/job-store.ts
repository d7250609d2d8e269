/**
 * One row per job: where it came from, who owns it, how it ended, and what it cost. The events of a job
 * live in the journal; both are written through the store's ordered writer. This file reads the rows.
 */
import type { Kysely, Selectable } from 'kysely';
import { parseTrace, type TraceStep } from '../../jobs/job-trace.js';
import type { DatabaseSchema, JobSource, JobStatus, JobsTable } from './schema.js';

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
  /** The owner id (never a raw token). */
  owner: string;
  clientMsgId: string | null;
  status: JobStatus;
  branch: string | null;
  modelsUsed: string[];
  reason: string | null;
  createdAt: Date;
  firstByteMs: number | null;
  totalMs: number | null;
  finishedAt: Date | null;
}

/** Job rows, as readers see them. */
export interface JobStore {
  /** The job, or null when unknown (or cleaned up). */
  getJob(id: string): Promise<JobRecord | null>;
  /** The newest job of `owner` made by a chat with `clientMsgId` since `since`, or null. */
  findJobByClientMsgId(owner: string, clientMsgId: string, since: Date): Promise<{ jobId: string; conversationId: string } | null>;
  /** The job's owner, status and recorded transitions (empty when none were recorded), or null when unknown. */
  getJobTrace(id: string): Promise<{ owner: string; status: JobStatus; steps: TraceStep[] } | null>;
}

/** Builds the job reads over `db`. */
export function createJobStore(db: Kysely<DatabaseSchema>): JobStore {
  return {
    async getJob(id) {
      const row = await db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
      return row === undefined ? null : toJobRecord(row);
    },

    async findJobByClientMsgId(owner, clientMsgId, since) {
      const row = await db
        .selectFrom('jobs')
        .select(['id', 'conversation_id'])
        .where('owner', '=', owner)
        .where('client_msg_id', '=', clientMsgId)
        .where('created_at', '>=', since)
        .orderBy('created_at', 'desc')
        .limit(1)
        .executeTakeFirst();
      return row === undefined ? null : { jobId: row.id, conversationId: row.conversation_id };
    },

    async getJobTrace(id) {
      const row = await db.selectFrom('jobs').select(['owner', 'status', 'trace']).where('id', '=', id).executeTakeFirst();
      return row === undefined ? null : { owner: row.owner, status: row.status, steps: parseTrace(row.trace) };
    },
  };
}

function toJobRecord(row: Selectable<JobsTable>): JobRecord {
  return {
    id: row.id,
    conversationId: row.conversation_id,
    source: row.source,
    mode: row.mode,
    owner: row.owner,
    clientMsgId: row.client_msg_id,
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
