/**
 * The job event journal: every event a job emits, written ahead of delivery (a client sees an event
 * only once it is here), so `subscribe` can replay it and a restart can end interrupted jobs without
 * ever contradicting what a client saw. Writes go through the store's ordered writer, batched with
 * everything else the store writes.
 */
import type { Kysely } from 'kysely';
import { storableData } from '../../storable-text.js';
import type { JobOutcome } from './job-store.js';
import type { OrderedWriter } from './ordered-writer.js';
import type { DatabaseSchema } from './schema.js';
import type { JobEnd, StoreWrite } from './write-batch.js';
import type { TraceStep } from '../../jobs/job-trace.js';

/** One job event as journaled and replayed (the `event` frame of the WebSocket protocol minus jobId). */
export interface JournalEvent {
  /** 1, 2, 3, … per job. */
  seq: number;
  event: string;
  data: Readonly<Record<string, unknown>>;
  /** ISO 8601. */
  at: string;
}

/** The job event journal. */
export interface JobJournal {
  /**
   * Writes one event; a terminal one carries the job's `end` (its outcome and, for `done`, the answer,
   * stored in the same statement). Resolves once committed. A job's events commit in order, and once one
   * fails none of its later events is written: the journal of a job never has a gap.
   */
  append(jobId: string, event: JournalEvent, end?: JobEnd): Promise<void>;
  /**
   * Ends a job whose events could not be written with the terminal `event` at the seq of the first one
   * that failed, and records `outcome`. Tried again until it is written (the store may be down).
   */
  fail(jobId: string, event: JournalEvent, outcome: JobOutcome): Promise<void>;
  /**
   * Records a stateless job whose journal could not be written after delivery: all its `events` (as its
   * client got them) and its `end`, in one statement that replaces whatever part of them was committed.
   * Tried again until it is written (the store may be down).
   */
  record(jobId: string, events: readonly JournalEvent[], end: JobEnd): Promise<void>;
  /** Removes every trace of a job whose accept was reported failed; tried again until it is written. */
  erase(jobId: string): Promise<void>;
  /** The job's committed events with `seq > afterSeq`, ordered by seq. */
  eventsAfter(jobId: string, afterSeq: number): Promise<JournalEvent[]>;
  /**
   * For start-up, before any job runs: ends every job still `running` (the process died under it)
   * with a terminal `error` event `{ message, reason: 'interrupted' }` at the next seq and status
   * `error`/`interrupted`. A running job whose terminal event was already journaled just gets the
   * status that event implies. Returns the ids of the jobs that were interrupted.
   */
  interruptUnfinished(): Promise<string[]>;
}

const TERMINAL_EVENTS = new Set(['done', 'error', 'cancelled']);

/** Builds the journal over `db`, writing through `writer`. */
export function createJobJournal(
  db: Kysely<DatabaseSchema>,
  writer: OrderedWriter<StoreWrite>,
  options: { now?: () => Date; traceOf?: ((jobId: string) => readonly TraceStep[] | undefined) | undefined } = {},
): JobJournal {
  const now = options.now ?? (() => new Date());
  const { traceOf } = options;

  const checked = (event: JournalEvent): { at: Date; json: string } => {
    if (!Number.isInteger(event.seq) || event.seq < 1) throw new RangeError(`bad seq ${event.seq}`);
    const at = new Date(event.at);
    if (Number.isNaN(at.getTime())) throw new RangeError(`bad event time ${event.at}`);
    // The hub hands over storable data already; this keeps a stray value from ever failing the batch.
    return { at, json: JSON.stringify(storableData(event.data)) };
  };

  return {
    async append(jobId, event, end) {
      const { at, json } = checked(event);
      // The job's flight recording goes into its row with its end, in the same statement.
      const withTrace = end !== undefined && traceOf !== undefined ? { ...end, trace: traceOf(jobId) } : end;
      return writer.add({ kind: 'event', jobId, seq: event.seq, event: event.event, json, at, end: withTrace });
    },

    async fail(jobId, event, outcome) {
      const { at, json } = checked(event);
      return writer.addDurable({ kind: 'failJob', jobId, seq: event.seq, json, at, outcome, trace: traceOf?.(jobId) });
    },

    async record(jobId, events, end) {
      const rows = events.map((event) => ({ seq: event.seq, event: event.event, ...checked(event) }));
      // The job's flight recording went with its failed terminal write (`traceOf` hands it out once).
      return writer.addDurable({ kind: 'recordJob', jobId, events: rows, end });
    },

    erase: (jobId) => writer.addDurable({ kind: 'eraseJob', jobId }),

    async eventsAfter(jobId, afterSeq) {
      const rows = await db
        .selectFrom('job_events')
        .select(['seq', 'event', 'data', 'at'])
        .where('job_id', '=', jobId)
        .where('seq', '>', afterSeq)
        .orderBy('seq')
        .execute();
      return rows.map((row) => ({ seq: row.seq, event: row.event, data: row.data, at: row.at.toISOString() }));
    },

    async interruptUnfinished() {
      const running = await db.selectFrom('jobs').select('id').where('status', '=', 'running').execute();
      const interrupted: string[] = [];
      for (const { id } of running) {
        const at = now();
        // One transaction per job: the event and the status change land together or not at all.
        // Only `trx` inside it — PGlite has a single connection, and `db` would wait for it forever.
        const wasInterrupted = await db.transaction().execute(async (trx) => {
          const last = (await trx
            .selectFrom('job_events')
            .select(['seq', 'event', 'data'])
            .where('job_id', '=', id)
            .orderBy('seq', 'desc')
            .limit(1)
            .executeTakeFirst()) ?? { seq: 0, event: '', data: {} };
          const terminal = TERMINAL_EVENTS.has(last.event);
          if (!terminal) {
            await trx
              .insertInto('job_events')
              .values({
                job_id: id,
                seq: last.seq + 1,
                event: 'error',
                data: JSON.stringify({ message: 'The server restarted while this job was running.', reason: 'interrupted' }),
                at,
              })
              .execute();
          }
          const outcome = terminal ? outcomeOf(last) : { status: 'error' as const, reason: 'interrupted' };
          await trx
            .updateTable('jobs')
            .set({ status: outcome.status, reason: outcome.reason, finished_at: at })
            .where('id', '=', id)
            .where('status', '=', 'running')
            .execute();
          return !terminal;
        });
        if (wasInterrupted) interrupted.push(id);
      }
      return interrupted;
    },
  };
}

/** The job status (and reason) a journaled terminal event stands for. */
function outcomeOf(terminal: { event: string; data: Readonly<Record<string, unknown>> }): {
  status: 'done' | 'error' | 'cancelled';
  reason: string | null;
} {
  if (terminal.event === 'done') return { status: 'done', reason: null };
  if (terminal.event === 'cancelled') return { status: 'cancelled', reason: null };
  const reason = terminal.data['reason'];
  return { status: 'error', reason: typeof reason === 'string' ? reason : 'internal' };
}
