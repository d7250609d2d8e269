/**
 * The statements behind the store's ordered writer: a batch of accepted messages, journal events (the
 * terminal ones with the job's end and its answer) and draft changes becomes one SQL statement, so n
 * writes cost one round trip and one commit; the repairs after a failure are one statement each.
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { DatabaseSchema, JobSource } from './schema.js';
import type { JobOutcome } from './job-store.js';
import type { TraceStep } from '../../jobs/job-trace.js';

/** A job accepted: its conversation (created or touched), its `running` row and the user's message. */
export interface AcceptWrite {
  kind: 'accept';
  jobId: string;
  conversationId: string;
  owner: string;
  source: JobSource;
  externalUser: string | null;
  mode: string;
  text: string;
  clientMsgId: string | null;
  at: Date;
}

/** A job's end, written with its terminal event: the job row's outcome and, for `done`, the answer. */
export interface JobEnd {
  outcome: JobOutcome;
  answer?: { conversationId: string; content: string } | undefined;
  /** The transitions the job took (the flight recorder), stored in the job row with its end. */
  trace?: readonly TraceStep[] | undefined;
}

/** One journal event; `json` is its data as jsonb text. */
export interface EventWrite {
  kind: 'event';
  jobId: string;
  seq: number;
  event: string;
  json: string;
  at: Date;
  end?: JobEnd | undefined;
}

/** A conversation's pending draft saved (`json`) or cleared (null), by the job `jobId`. */
export interface DraftWrite {
  kind: 'draft';
  jobId: string;
  conversationId: string;
  json: string | null;
  expiresAt: Date | null;
}

/**
 * The repair after a job's events could not be written: the journal ends at `seq` with this terminal
 * `error` event (anything at or after `seq` that an ambiguous write may have committed is replaced), the
 * job row gets the outcome, and an answer it may have stored is removed — the store then says what the
 * client was told.
 */
export interface FailJobWrite {
  kind: 'failJob';
  jobId: string;
  seq: number;
  json: string;
  at: Date;
  outcome: JobOutcome;
  /** The transitions the job took so far (the flight recorder). */
  trace?: readonly TraceStep[] | undefined;
}

/** The repair after an accept that may have committed although it was reported failed: the job is removed. */
export interface EraseJobWrite {
  kind: 'eraseJob';
  jobId: string;
}

/**
 * The repair after a stateless job's journal could not be written after delivery (the store was down
 * while its client got the whole answer): all its events as they were sent (replacing any part an
 * ambiguous write may have committed) and its end — the job row's outcome and, for `done`, the answer.
 * Without it the job row would say `running` for a job its client saw end.
 */
export interface RecordJobWrite {
  kind: 'recordJob';
  jobId: string;
  events: ReadonlyArray<{ seq: number; event: string; json: string; at: Date }>;
  end: JobEnd;
}

export type StoreWrite = AcceptWrite | EventWrite | DraftWrite | FailJobWrite | EraseJobWrite | RecordJobWrite;

/** Writes one batch; repairs come alone, everything else together in one statement. */
export async function writeBatch(db: Kysely<DatabaseSchema>, items: readonly StoreWrite[]): Promise<void> {
  const first = items[0];
  if (first?.kind === 'failJob') return failJob(db, first);
  if (first?.kind === 'eraseJob') return eraseJob(db, first);
  if (first?.kind === 'recordJob') return recordJob(db, first);
  const statement = batchStatement(items);
  if (statement !== null) await statement.execute(db);
}

/** One statement for a batch of accepts, events and drafts: a data-modifying CTE per table. */
function batchStatement(items: readonly StoreWrite[]): RawBuilder<unknown> | null {
  /** Per conversation: the accept that creates it (the first) and when it was last touched. */
  const conversations = new Map<string, { first: AcceptWrite; touchedAt: Date }>();
  const accepted = new Map<string, AcceptWrite>();
  const endsByJob = new Map<string, { end: JobEnd; at: Date }>();
  const messages: RawBuilder<unknown>[] = [];
  const events: RawBuilder<unknown>[] = [];
  const drafts = new Map<string, DraftWrite>();
  for (const item of items) {
    switch (item.kind) {
      case 'accept':
        // One row per conversation: ON CONFLICT DO UPDATE may not touch a row twice in one statement.
        conversations.set(item.conversationId, { first: conversations.get(item.conversationId)?.first ?? item, touchedAt: item.at });
        accepted.set(item.jobId, item);
        messages.push(sql`(${item.conversationId}, 'user', ${item.text}, ${item.jobId}, ${item.at})`);
        break;
      case 'event':
        events.push(sql`(${item.jobId}, ${item.seq}, ${item.event}, ${item.json}, ${item.at})`);
        if (item.end !== undefined) {
          endsByJob.set(item.jobId, { end: item.end, at: item.at });
          const answer = item.end.answer;
          if (answer !== undefined) messages.push(sql`(${answer.conversationId}, 'assistant', ${answer.content}, ${item.jobId}, ${item.at})`);
        }
        break;
      case 'draft':
        // Only the last change of a conversation's draft in the batch matters.
        drafts.delete(item.conversationId);
        drafts.set(item.conversationId, item);
        break;
      default:
        throw new Error(`a ${item.kind} write is written on its own`);
    }
  }

  const parts: RawBuilder<unknown>[] = [];
  if (conversations.size > 0) {
    const rows = [...conversations.values()].map(
      ({ first: a, touchedAt }) => sql`(${a.conversationId}, ${a.owner}, ${a.source}, ${a.externalUser}, ${a.at}, ${touchedAt})`,
    );
    parts.push(sql`c as (
      insert into conversations (id, owner, source, external_user, created_at, updated_at) values ${sql.join(rows)}
      on conflict (id) do update set updated_at = excluded.updated_at)`);
  }
  if (accepted.size > 0) {
    // A job that also ended in this batch is inserted ended: an UPDATE in the same statement would not see it.
    const rows = [...accepted.values()].map((a) => {
      const ended = endsByJob.get(a.jobId);
      endsByJob.delete(a.jobId);
      const o = ended?.end.outcome;
      return sql`(${a.jobId}, ${a.conversationId}, ${a.source}, ${a.mode}, ${a.owner}, ${a.clientMsgId}, ${o?.status ?? 'running'},
        ${o?.reason ?? null}, ${o?.branch ?? null}, ${JSON.stringify(o?.modelsUsed ?? [])}, ${roundMs(o?.firstByteMs)}, ${roundMs(o?.totalMs)},
        ${a.at}, ${ended?.at ?? null}, ${traceJson(ended?.end.trace)})`;
    });
    parts.push(sql`j as (
      insert into jobs (id, conversation_id, source, mode, owner, client_msg_id, status, reason, branch, models_used,
        first_byte_ms, total_ms, created_at, finished_at, trace)
      values ${sql.join(rows)})`);
  }
  if (messages.length > 0) {
    // One INSERT in the order of the writes, so message ids follow it.
    parts.push(sql`m as (insert into messages (conversation_id, role, content, job_id, created_at) values ${sql.join(messages)})`);
  }
  if (events.length > 0) {
    parts.push(sql`e as (insert into job_events (job_id, seq, event, data, at) values ${sql.join(events)})`);
  }
  if (endsByJob.size > 0) {
    // Parameters in a VALUES list outside an INSERT have no type of their own: each is cast.
    const rows = [...endsByJob].map(
      ([jobId, { end, at }]) =>
        sql`(${jobId}::text, ${end.outcome.status}::text, ${end.outcome.reason ?? null}::text, ${end.outcome.branch ?? null}::text,
          ${JSON.stringify(end.outcome.modelsUsed ?? [])}::jsonb, ${roundMs(end.outcome.firstByteMs)}::integer,
          ${roundMs(end.outcome.totalMs)}::integer, ${at}::timestamptz, ${traceJson(end.trace)}::jsonb)`,
    );
    parts.push(sql`f as (
      update jobs as j set status = v.status, reason = v.reason, branch = v.branch, models_used = v.models_used,
        first_byte_ms = v.first_byte_ms, total_ms = v.total_ms, finished_at = v.finished_at, trace = v.trace
      from (values ${sql.join(rows)}) as v(id, status, reason, branch, models_used, first_byte_ms, total_ms, finished_at, trace)
      where j.id = v.id and j.status = 'running')`);
  }
  const saved = [...drafts.values()].filter((d) => d.json !== null);
  const cleared = [...drafts.values()].filter((d) => d.json === null);
  if (saved.length > 0) {
    const rows = saved.map((d) => sql`(${d.conversationId}, ${d.json}, ${d.expiresAt})`);
    parts.push(sql`ds as (
      insert into drafts (conversation_id, draft, expires_at) values ${sql.join(rows)}
      on conflict (conversation_id) do update set draft = excluded.draft, expires_at = excluded.expires_at)`);
  }
  if (cleared.length > 0) {
    parts.push(sql`dc as (delete from drafts where conversation_id in (${sql.join(cleared.map((d) => d.conversationId))}))`);
  }
  // Every part runs to completion whether or not the main query reads it; foreign keys are checked at
  // the end of the statement, when the conversations of `c` exist.
  return parts.length === 0 ? null : sql`with ${sql.join(parts, sql`, `)} select 1`;
}

async function failJob(db: Kysely<DatabaseSchema>, repair: FailJobWrite): Promise<void> {
  const { jobId, seq, outcome } = repair;
  await sql`
    with gone as (delete from job_events where job_id = ${jobId} and seq > ${seq}),
    unsaid as (delete from messages where job_id = ${jobId} and role = 'assistant'),
    ended as (
      insert into job_events (job_id, seq, event, data, at) values (${jobId}, ${seq}, 'error', ${repair.json}, ${repair.at})
      on conflict (job_id, seq) do update set event = excluded.event, data = excluded.data, at = excluded.at)
    update jobs set status = ${outcome.status}, reason = ${outcome.reason ?? null}, branch = ${outcome.branch ?? null},
      models_used = ${JSON.stringify(outcome.modelsUsed ?? [])}, first_byte_ms = ${roundMs(outcome.firstByteMs)},
      total_ms = ${roundMs(outcome.totalMs)}, finished_at = ${repair.at}, trace = coalesce(${traceJson(repair.trace)}::jsonb, trace)
    where id = ${jobId}`.execute(db);
}

async function recordJob(db: Kysely<DatabaseSchema>, repair: RecordJobWrite): Promise<void> {
  const { jobId, end } = repair;
  const last = repair.events.at(-1);
  if (last === undefined) throw new Error(`no events to record for job ${jobId}`);
  const outcome = end.outcome;
  const events = repair.events.map((e) => sql`(${jobId}, ${e.seq}, ${e.event}, ${e.json}, ${e.at})`);
  // The sibling CTEs see the rows as they were: `unsaid` removes an answer an ambiguous write stored, `said` adds it once.
  const said =
    end.answer === undefined
      ? sql``
      : sql`said as (insert into messages (conversation_id, role, content, job_id, created_at)
          values (${end.answer.conversationId}, 'assistant', ${end.answer.content}, ${jobId}, ${last.at})),`;
  await sql`
    with gone as (delete from job_events where job_id = ${jobId} and seq > ${last.seq}),
    unsaid as (delete from messages where job_id = ${jobId} and role = 'assistant'),
    ${said}
    sent as (
      insert into job_events (job_id, seq, event, data, at) values ${sql.join(events)}
      on conflict (job_id, seq) do update set event = excluded.event, data = excluded.data, at = excluded.at)
    update jobs set status = ${outcome.status}, reason = ${outcome.reason ?? null}, branch = ${outcome.branch ?? null},
      models_used = ${JSON.stringify(outcome.modelsUsed ?? [])}, first_byte_ms = ${roundMs(outcome.firstByteMs)},
      total_ms = ${roundMs(outcome.totalMs)}, finished_at = ${last.at}, trace = coalesce(${traceJson(end.trace)}::jsonb, trace)
    where id = ${jobId}`.execute(db);
}

async function eraseJob(db: Kysely<DatabaseSchema>, repair: EraseJobWrite): Promise<void> {
  await sql`
    with events as (delete from job_events where job_id = ${repair.jobId}),
    said as (delete from messages where job_id = ${repair.jobId})
    delete from jobs where id = ${repair.jobId}`.execute(db);
}

/** A trace as jsonb text, or null when the job brought none. */
function traceJson(trace: readonly TraceStep[] | undefined): string | null {
  return trace === undefined ? null : JSON.stringify(trace);
}

// The columns are integers; latencies measured with performance.now() carry fractions.
function roundMs(value: number | null | undefined): number | null {
  return value === null || value === undefined ? null : Math.round(value);
}
