/**
 * The job event journal: every event a job emits, so `subscribe` can replay it and a restart can end
 * interrupted jobs. Appending is synchronous and never waits for the database — events go to a buffer
 * that is written in batches (one multi-row INSERT each) a few milliseconds later or as soon as a batch
 * is full. Reads merge the buffer in, so a replay never misses an event that is not written yet.
 */
import type { Kysely } from 'kysely';
import type { DatabaseSchema } from './schema.js';

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
  /** Buffers one event; written within `flushIntervalMs`. Throws only after {@link close}. */
  append(jobId: string, event: JournalEvent): void;
  /** Resolves once every event appended before the call is committed; rejects if writing fails. */
  flush(): Promise<void>;
  /** The job's events with `seq > afterSeq`, written or still buffered, ordered by seq. */
  eventsAfter(jobId: string, afterSeq: number): Promise<JournalEvent[]>;
  /**
   * For start-up, before any job runs: ends every job still `running` (the process died under it)
   * with a terminal `error` event `{ message, reason: 'interrupted' }` at the next seq and status
   * `error`/`interrupted`. A running job whose terminal event was already journaled just gets the
   * status that event implies. Returns the ids of the jobs that were interrupted.
   */
  interruptUnfinished(): Promise<string[]>;
  /**
   * Drops the buffered events of a job that turned out never to exist (its accept write failed). Events
   * already handed to a write are written anyway; they belong to no job row and age out with retention.
   */
  discard(jobId: string): void;
  /** Events buffered or being written. */
  readonly pendingCount: number;
  /** Flushes and refuses further appends. */
  close(): Promise<void>;
}

/** Batching and error reporting of {@link createJobJournal}. */
export interface JobJournalOptions {
  /** How long an event may wait in the buffer (default 25 ms). */
  flushIntervalMs?: number;
  /** Events per INSERT; a full buffer is written at once (default 250). */
  maxBatch?: number;
  /** Wait before retrying a failed background write (default 1000 ms). */
  retryMs?: number;
  /** Failures of background writes (the events stay buffered and are retried). */
  onError?: (error: unknown) => void;
  now?: () => Date;
}

const TERMINAL_EVENTS = new Set(['done', 'error', 'cancelled']);

interface BufferedEvent {
  jobId: string;
  event: JournalEvent;
  /** `event.data` as jsonb text, made at append time so a value JSON cannot hold fails its caller. */
  json: string;
}

/** Builds the journal over `db`. */
export function createJobJournal(db: Kysely<DatabaseSchema>, options: JobJournalOptions = {}): JobJournal {
  const flushIntervalMs = options.flushIntervalMs ?? 25;
  const maxBatch = options.maxBatch ?? 250;
  const retryMs = options.retryMs ?? 1000;
  const onError = options.onError ?? (() => undefined);
  const now = options.now ?? (() => new Date());

  /** Not yet handed to a write, in append order. */
  let buffer: BufferedEvent[] = [];
  /** Buffered or being written, by job and seq: what reads merge in. Emptied only after a commit. */
  const unwritten = new Map<string, Map<number, JournalEvent>>();
  let unwrittenCount = 0;
  let timer: NodeJS.Timeout | undefined;
  /** Writes run one after another on this chain, so batches commit in append order. */
  let tail: Promise<unknown> = Promise.resolve();
  let drainQueued = false;
  /** The last background write failed: wait for the retry timer instead of writing on every append. */
  let retrying = false;
  let closed = false;

  function forget(batch: readonly BufferedEvent[]): void {
    for (const { jobId, event } of batch) {
      const events = unwritten.get(jobId);
      if (events?.delete(event.seq)) unwrittenCount -= 1;
      if (events?.size === 0) unwritten.delete(jobId);
    }
  }

  async function writeBatch(batch: readonly BufferedEvent[]): Promise<void> {
    await db
      .insertInto('job_events')
      .values(
        batch.map(({ jobId, event, json }) => ({
          job_id: jobId,
          seq: event.seq,
          event: event.event,
          data: json,
          at: new Date(event.at),
        })),
      )
      // A retry after an ambiguous failure (committed, then the connection dropped) must not fail
      // the whole batch again.
      .onConflict((oc) => oc.columns(['job_id', 'seq']).doNothing())
      .execute();
  }

  /** Writes until the buffer is empty; resolves with the error that stopped it, if any. */
  async function writeAll(): Promise<unknown> {
    drainQueued = false;
    while (buffer.length > 0) {
      const batch = buffer.slice(0, maxBatch);
      buffer = buffer.slice(batch.length);
      try {
        await writeBatch(batch);
      } catch (error) {
        if (!isDataError(error)) {
          buffer = batch.concat(buffer);
          return error;
        }
        // One event the database refuses must not block the journal (every retry would fail the
        // same way): write this batch row by row and drop only what is refused.
        for (const [index, item] of batch.entries()) {
          try {
            await writeBatch([item]);
          } catch (rowError) {
            if (!isDataError(rowError)) {
              forget(batch.slice(0, index));
              buffer = batch.slice(index).concat(buffer);
              return rowError;
            }
            onError(rowError);
          }
        }
      }
      forget(batch);
    }
    return undefined;
  }

  function drain(): Promise<unknown> {
    drainQueued = true;
    const run = tail.then(writeAll);
    tail = run;
    return run;
  }

  function schedule(delayMs: number): void {
    if (timer === undefined) timer = setTimeout(drainInBackground, delayMs);
  }

  function drainInBackground(): void {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (drainQueued) return; // a queued drain will take whatever is buffered by then
    void drain().then((error) => {
      retrying = error !== undefined;
      if (error === undefined) return;
      onError(error);
      if (!closed) schedule(retryMs);
    });
  }

  /** The job's last event, written or buffered (seq 0 when it has none). */
  async function lastEvent(trx: Kysely<DatabaseSchema>, jobId: string): Promise<Omit<JournalEvent, 'at'>> {
    const row = await trx
      .selectFrom('job_events')
      .select(['seq', 'event', 'data'])
      .where('job_id', '=', jobId)
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    let last: Omit<JournalEvent, 'at'> = row ?? { seq: 0, event: '', data: {} };
    for (const event of unwritten.get(jobId)?.values() ?? []) {
      if (event.seq > last.seq) last = event;
    }
    return last;
  }

  async function flush(): Promise<void> {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const error = await drain();
    retrying = error !== undefined;
    if (error === undefined) return;
    if (!closed) schedule(retryMs); // the caller gets the error; the events still get retried
    throw error;
  }

  return {
    append(jobId, event) {
      if (closed) throw new Error('the job journal is closed');
      if (!Number.isInteger(event.seq) || event.seq < 1) throw new RangeError(`bad seq ${event.seq}`);
      if (Number.isNaN(Date.parse(event.at))) throw new RangeError(`bad event time ${event.at}`);
      const json = toJsonb(event.data);
      let events = unwritten.get(jobId);
      if (events === undefined) unwritten.set(jobId, (events = new Map()));
      if (!events.has(event.seq)) unwrittenCount += 1;
      events.set(event.seq, event);
      buffer.push({ jobId, event, json });
      if (buffer.length >= maxBatch && !retrying) drainInBackground();
      else schedule(flushIntervalMs);
    },

    flush,

    discard(jobId) {
      const events = unwritten.get(jobId);
      if (events === undefined) return;
      const kept = buffer.filter((item) => item.jobId !== jobId);
      for (const item of buffer) {
        if (item.jobId === jobId && events.delete(item.event.seq)) unwrittenCount -= 1;
      }
      buffer = kept;
      if (events.size === 0) unwritten.delete(jobId);
    },

    async eventsAfter(jobId, afterSeq) {
      // Snapshot the unwritten events *before* reading the table: an event leaves `unwritten` only
      // after its batch committed, so each event is in the snapshot, in the query result, or both.
      const buffered = [...(unwritten.get(jobId)?.values() ?? [])].filter((e) => e.seq > afterSeq);
      const rows = await db
        .selectFrom('job_events')
        .select(['seq', 'event', 'data', 'at'])
        .where('job_id', '=', jobId)
        .where('seq', '>', afterSeq)
        .orderBy('seq')
        .execute();
      const bySeq = new Map<number, JournalEvent>();
      for (const row of rows) {
        bySeq.set(row.seq, { seq: row.seq, event: row.event, data: row.data, at: row.at.toISOString() });
      }
      for (const event of buffered) if (!bySeq.has(event.seq)) bySeq.set(event.seq, event);
      return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
    },

    async interruptUnfinished() {
      const running = await db.selectFrom('jobs').select('id').where('status', '=', 'running').execute();
      const interrupted: string[] = [];
      for (const { id } of running) {
        const at = now();
        // One transaction per job: the event and the status change land together or not at all.
        // Only `trx` inside it — PGlite has a single connection, and `db` would wait for it forever.
        const wasInterrupted = await db.transaction().execute(async (trx) => {
          const last = await lastEvent(trx, id);
          const terminal = TERMINAL_EVENTS.has(last.event);
          if (!terminal) {
            await trx
              .insertInto('job_events')
              .values({
                job_id: id,
                seq: last.seq + 1,
                event: 'error',
                data: JSON.stringify({
                  message: 'The server restarted while this job was running.',
                  reason: 'interrupted',
                }),
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

    get pendingCount() {
      return unwrittenCount;
    },

    async close() {
      closed = true;
      await flush();
    },
  };
}

/**
 * JSON text that jsonb accepts. jsonb cannot store U+0000, which JSON.stringify writes as `\u0000`;
 * it becomes U+FFFD (only where the backslash is not itself escaped).
 */
function toJsonb(value: unknown): string {
  return JSON.stringify(value).replace(/(?<!\\)((?:\\\\)*)\\u0000/g, '$1\\ufffd');
}

/**
 * SQLSTATE classes 22 (data exception) and 23 (integrity violation): the rows are at fault, not the
 * connection, so retrying the same rows cannot help. Both drivers put the SQLSTATE in `code`.
 */
function isDataError(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && /^2[23]/.test(code);
}

/** The job status (and reason) a journaled terminal event stands for. */
function outcomeOf(terminal: Pick<JournalEvent, 'event' | 'data'>): {
  status: 'done' | 'error' | 'cancelled';
  reason: string | null;
} {
  if (terminal.event === 'done') return { status: 'done', reason: null };
  if (terminal.event === 'cancelled') return { status: 'cancelled', reason: null };
  const reason = terminal.data['reason'];
  return { status: 'error', reason: typeof reason === 'string' ? reason : 'internal' };
}
