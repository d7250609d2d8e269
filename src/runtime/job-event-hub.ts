import type { Logger } from 'pino';
import type { JobJournal } from '../actors/store/job-journal.js';
import type { JobEnd } from '../actors/store/write-batch.js';
import { EarlierWriteFailedError } from '../actors/store/ordered-writer.js';
import { isStoreUnavailable } from '../actors/store/store-errors.js';
import { toErrorInfo } from '../errors.js';
import { isTerminal, type JobEvent, type JobEventPayload } from '../jobs/job-event.js';
import type { JobOutcome } from '../machines/job-machine.js';
import { storableData, storableText } from '../storable-text.js';

type Listener = (event: JobEvent) => void;

/**
 * The longest `result` event, in characters: a longer chunk (a model's whole answer in one piece, say) is
 * sent as several events, so no single frame or journal row grows with the answer.
 */
export const MAX_RESULT_CHARS = 16 * 1024;

interface LiveJob {
  owner: string;
  conversationId: string;
  /** The last seq handed out. */
  seq: number;
  listeners: Set<Listener>;
  /** Every committed event so far: a subscriber of a live job replays from here, not from the database. */
  events: JobEvent[];
  /** Its terminal event has been published (or it ended on a store failure): nothing more is taken. */
  ended: boolean;
  /** Settles with the job's accept write. */
  accepted: Promise<void>;
  acceptedOk: boolean;
  /** Delivered at once and journaled after its end (see {@link JobEventHub.openStateless}). */
  stateless: boolean;
}

/** What the hub tells the runtime. */
export interface JobEventHubHooks {
  /** The job has ended for good (its terminal event is committed, or it was ended by a store failure). */
  onEnded(jobId: string, outcome: JobOutcome): void;
  /** The job's events can no longer be journaled: it has been ended; stop its actor. */
  onAbandoned(jobId: string): void;
  /** The sentence of a job error event for `reason`, in the persona's language. */
  errorMessage(reason: 'store_unavailable' | 'internal'): string;
  /** Sees how long each event waited from publish to commit (for the bench). */
  onCommitted?(waitedMs: number): void;
}

/**
 * Numbers, journals and fans out the events of every job, write-ahead: an event reaches subscribers only
 * once the journal holds it, so nothing a client saw can be contradicted by a replay or by a restart.
 * `seq` is contiguous per job because every event of a job passes through here in order, and the
 * journal commits a job's events in order; the terminal event is the last one (anything a job would
 * publish after it is dropped). Subscribers get the replay, then live events, each once.
 *
 * When the journal cannot take a job's event (the store is down, or refuses a row), the job ends at that
 * seq with `error` (`store_unavailable` or `internal`): that event is delivered at once, since a client
 * must not wait on an outage, and written as soon as the store lets it (see `JobJournal.fail`).
 */
export class JobEventHub {
  private readonly live = new Map<string, LiveJob>();
  /**
   * Ended jobs whose journal is not complete yet: ended by a store failure and their ending event not
   * written, or stateless and being written after delivery. A subscriber gets their events from here,
   * ending included, until the journal has them.
   */
  private readonly unwritten = new Map<string, LiveJob>();
  /** Live jobs per owner, for the per-owner cap. */
  private readonly perOwner = new Map<string, number>();
  private readonly idle: Array<() => void> = [];

  constructor(
    private readonly journal: JobJournal,
    private readonly hooks: JobEventHubHooks,
    private readonly log: Logger,
  ) {}

  /**
   * Registers a job before its first event. `accepted` is its accept write: its events are journaled
   * after it, and if it fails nothing of the job is ever delivered (nobody was told of it).
   */
  open(jobId: string, owner: string, conversationId: string, accepted: Promise<void>): void {
    const job = this.register(jobId, owner, conversationId, accepted, false);
    accepted.then(
      () => (job.acceptedOk = true),
      () => this.discard(jobId, job),
    );
  }

  /**
   * Registers a stateless job (the client holds the conversation; nothing will be replayed): its events
   * reach subscribers at once, and its journal — events in order, the end with the last — is written
   * after the terminal event has been delivered, off the hot path. `accepted` is its accept write, already
   * under way; a failure of it or of the journal is logged, and the client keeps what it was sent.
   */
  openStateless(jobId: string, owner: string, conversationId: string, accepted: Promise<void>): void {
    const job = this.register(jobId, owner, conversationId, accepted, true);
    job.acceptedOk = true;
    accepted.catch((error: unknown) => {
      job.acceptedOk = false;
      this.log.error({ jobId, reason: toErrorInfo(error).reason, err: error }, 'could not record a stateless job');
    });
  }

  private register(jobId: string, owner: string, conversationId: string, accepted: Promise<void>, stateless: boolean): LiveJob {
    const job: LiveJob = { owner, conversationId, seq: 0, listeners: new Set(), events: [], ended: false, accepted, acceptedOk: false, stateless };
    this.live.set(jobId, job);
    this.perOwner.set(owner, (this.perOwner.get(owner) ?? 0) + 1);
    return job;
  }

  /** The owner of a job that has not ended yet (or whose ending is not journaled yet), or undefined. */
  ownerOf(jobId: string): string | undefined {
    return (this.live.get(jobId) ?? this.unwritten.get(jobId))?.owner;
  }

  get liveCount(): number {
    return this.live.size;
  }

  /** Jobs of `owner` accepted (or being accepted) and not ended. */
  liveCountOf(owner: string): number {
    return this.perOwner.get(owner) ?? 0;
  }

  /** Resolves when no job is live any more. */
  whenIdle(): Promise<void> {
    if (this.live.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  publish(jobId: string, payload: JobEventPayload, outcome?: JobOutcome): void {
    if (payload.event === 'result' && payload.data.content.length > MAX_RESULT_CHARS) {
      for (const piece of pieces(payload.data.content, MAX_RESULT_CHARS)) this.publishOne(jobId, { event: 'result', data: { content: piece } });
      return;
    }
    this.publishOne(jobId, payload, outcome);
  }

  private publishOne(jobId: string, payload: JobEventPayload, outcome?: JobOutcome): void {
    const job = this.live.get(jobId);
    if (job === undefined || job.ended) return;
    job.seq += 1;
    const event: JobEvent = { jobId, seq: job.seq, event: payload.event, data: storableData(payload.data), at: new Date().toISOString() };
    const terminal = isTerminal(payload.event);
    if (terminal) job.ended = true;
    const answer = outcome?.status === 'done' && outcome.answer !== null ? { conversationId: job.conversationId, content: storableText(outcome.answer) } : undefined;
    const end = terminal && outcome !== undefined ? { outcome, answer } : undefined;
    if (job.stateless) {
      this.deliver(job, event);
      if (terminal) {
        const ended = outcome ?? defaultOutcome(event);
        this.journalAfterDelivery(jobId, job, end ?? { outcome: ended }, ended);
      }
      return;
    }
    const publishedAt = performance.now();
    this.journal.append(jobId, { seq: event.seq, event: event.event, data: event.data, at: event.at }, end).then(
      () => {
        this.hooks.onCommitted?.(performance.now() - publishedAt);
        this.committed(jobId, job, event, outcome);
      },
      (error: unknown) => void this.failed(jobId, job, event, error),
    );
  }

  /**
   * Replays after `afterSeq`, then delivers live events until the terminal one. A live job replays from
   * memory; an ended one (or one of an earlier run) from the journal. Resolves with `ended: true` when
   * nothing more will ever come (the job has ended and everything after `afterSeq` was delivered), so
   * the caller can let go at once — also when `afterSeq` is past the job's end.
   */
  async subscribe(jobId: string, afterSeq: number, listener: Listener): Promise<{ unsubscribe: () => void; ended: boolean }> {
    const job = this.live.get(jobId) ?? this.unwritten.get(jobId);
    if (job) {
      // Live: everything it has committed is in memory. Replay and attach in one synchronous step.
      let last = afterSeq;
      const deliver: Listener = (event) => {
        if (event.seq !== last + 1) return;
        last = event.seq;
        listener(event);
      };
      for (const event of job.events) deliver(event);
      const ended = job.events.some((event) => isTerminal(event.event));
      if (ended) return { unsubscribe: () => undefined, ended };
      job.listeners.add(deliver);
      return { unsubscribe: () => job.listeners.delete(deliver), ended };
    }
    // Ended (here or in an earlier run): the journal has all of it, terminal event included.
    let last = afterSeq;
    for (const stored of await this.journal.eventsAfter(jobId, afterSeq)) {
      if (stored.seq !== last + 1) continue;
      last = stored.seq;
      listener({ jobId, ...stored, event: stored.event as JobEvent['event'] });
    }
    return { unsubscribe: () => undefined, ended: true };
  }

  private committed(jobId: string, job: LiveJob, event: JobEvent, outcome: JobOutcome | undefined): void {
    if (this.live.get(jobId) !== job) return;
    this.deliver(job, event);
    if (isTerminal(event.event)) this.end(jobId, job, outcome ?? defaultOutcome(event));
  }

  /**
   * A stateless job has ended and its client has every event: its events go to the journal now, in one
   * batch behind its accept (the ordered writer commits them together), with the end on the last. When
   * they fail although the accept committed (the store went down meanwhile), the whole journal is
   * recorded again once the store is back: else its row would say `running` for a job its client saw end.
   */
  private journalAfterDelivery(jobId: string, job: LiveJob, end: JobEnd, outcome: JobOutcome): void {
    this.unwritten.set(jobId, job);
    const events = job.events.map(({ seq, event, data, at }) => ({ seq, event, data, at }));
    const written = events.map((event, index) => this.journal.append(jobId, event, index === events.length - 1 ? end : undefined));
    const done = (): void => {
      if (this.unwritten.get(jobId) === job) this.unwritten.delete(jobId);
    };
    // The accept's own failure is logged where it is caught (`openStateless`); the events then fail with it.
    Promise.all([job.accepted, ...written]).then(done, () => {
      if (!job.acceptedOk) return done();
      this.journal
        .record(jobId, events, end)
        .catch((repairError: unknown) => this.log.error({ jobId, reason: toErrorInfo(repairError).reason, err: repairError }, 'could not journal a stateless job'))
        .finally(done);
    });
    this.end(jobId, job, outcome);
  }

  /** A job's event could not be journaled: the job ends there (see the class comment). */
  private async failed(jobId: string, job: LiveJob, event: JobEvent, error: unknown): Promise<void> {
    // If the accept failed too, the job never existed: `discard` takes care of it.
    await job.accepted.catch(() => undefined);
    if (!job.acceptedOk || this.live.get(jobId) !== job) return;
    const cause = error instanceof EarlierWriteFailedError ? error.cause : error;
    const reason = isStoreUnavailable(cause) ? 'store_unavailable' : 'internal';
    this.log.error({ jobId, seq: event.seq, event: event.event, reason, err: cause }, 'job event could not be journaled; ending the job');
    job.ended = true;
    const ending: JobEvent = { jobId, seq: event.seq, event: 'error', data: { message: this.hooks.errorMessage(reason), reason }, at: new Date().toISOString() };
    const outcome: JobOutcome = { status: 'error', branch: null, modelsUsed: [], firstByteMs: null, totalMs: 0, reason, answer: null };
    this.hooks.onAbandoned(jobId);
    this.deliver(job, ending);
    this.unwritten.set(jobId, job);
    this.journal
      .fail(jobId, { seq: ending.seq, event: ending.event, data: ending.data, at: ending.at }, outcome)
      .catch((repairError: unknown) => this.log.error({ jobId, reason: toErrorInfo(repairError).reason, err: repairError }, 'could not record the end of a job'))
      .finally(() => {
        if (this.unwritten.get(jobId) === job) this.unwritten.delete(jobId);
      });
    this.end(jobId, job, outcome);
  }

  /**
   * The accept failed: nobody heard of the job, so nothing of it is delivered, whatever it still emits.
   * An accept reported failed in an outage may still have committed (the statement ran after our
   * timeout), so the job is erased; after a refused row there is nothing to erase, and it costs nothing.
   */
  private discard(jobId: string, job: LiveJob): void {
    if (this.live.get(jobId) !== job) return;
    job.ended = true;
    this.forget(jobId, job);
    this.journal.erase(jobId).catch((error: unknown) => this.log.error({ jobId, reason: 'store_unavailable', err: error }, 'could not remove a job whose accept failed'));
    this.notifyIdle();
  }

  private deliver(job: LiveJob, event: JobEvent): void {
    job.events.push(event);
    for (const listener of job.listeners) listener(event);
  }

  private forget(jobId: string, job: LiveJob): void {
    this.live.delete(jobId);
    const count = (this.perOwner.get(job.owner) ?? 1) - 1;
    if (count > 0) this.perOwner.set(job.owner, count);
    else this.perOwner.delete(job.owner);
  }

  private end(jobId: string, job: LiveJob, outcome: JobOutcome): void {
    this.forget(jobId, job);
    this.hooks.onEnded(jobId, outcome);
    this.notifyIdle();
  }

  private notifyIdle(): void {
    if (this.live.size > 0) return;
    for (const resolve of this.idle.splice(0)) resolve();
  }
}

/** The outcome of a terminal event published without one (not expected from the machines). */
function defaultOutcome(event: JobEvent): JobOutcome {
  const status = event.event === 'done' ? 'done' : event.event === 'cancelled' ? 'cancelled' : 'error';
  const reason = status === 'error' && typeof event.data['reason'] === 'string' ? event.data['reason'] : status === 'error' ? 'internal' : null;
  return { status, branch: null, modelsUsed: [], firstByteMs: null, totalMs: 0, reason, answer: null };
}

/** `text` in pieces of at most `size` characters, never splitting a surrogate pair. */
function pieces(text: string, size: number): string[] {
  const out: string[] = [];
  for (let at = 0; at < text.length; ) {
    let end = Math.min(text.length, at + size);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end -= 1;
    out.push(text.slice(at, end));
    at = end;
  }
  return out;
}
