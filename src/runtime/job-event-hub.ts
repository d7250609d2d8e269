import type { JobJournal } from '../actors/store/job-journal.js';
import { isTerminal, type JobEvent, type JobEventPayload } from '../jobs/job-event.js';
import type { JobOutcome } from '../machines/job-machine.js';

type Listener = (event: JobEvent) => void;

interface LiveJob {
  owner: string;
  seq: number;
  listeners: Set<Listener>;
  /** Every event so far: a subscriber of a live job replays from here, not from the database. */
  events: JobEvent[];
}

/**
 * Numbers, journals and fans out the events of every job. `seq` is contiguous per job because every
 * event of a job passes through here, in order; the terminal event is the last one (anything a job
 * would publish after it is dropped). Subscribers get the journal's replay, then live events, each once.
 */
export class JobEventHub {
  private readonly live = new Map<string, LiveJob>();
  private readonly idle: Array<() => void> = [];

  constructor(
    private readonly journal: JobJournal,
    private readonly onTerminal: (jobId: string, outcome: JobOutcome | undefined) => void,
  ) {}

  /** Registers a job before its first event, so subscribers of a new job get its live events. */
  open(jobId: string, owner: string): void {
    this.live.set(jobId, { owner, seq: 0, listeners: new Set(), events: [] });
  }

  /**
   * Forgets a job whose submission failed: nobody was told of it, so nothing of it is delivered, whatever
   * it still emits while it is being stopped, and its buffered journal events are dropped (any already
   * written belong to no job row: `subscribe` never serves them, retention deletes them).
   */
  discard(jobId: string): void {
    this.live.delete(jobId);
    this.journal.discard(jobId);
    this.notifyIdle();
  }

  /** The owner of a job that has not ended yet, or undefined. */
  ownerOf(jobId: string): string | undefined {
    return this.live.get(jobId)?.owner;
  }

  get liveCount(): number {
    return this.live.size;
  }

  /** Resolves when no job is live any more. */
  whenIdle(): Promise<void> {
    if (this.live.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  publish(jobId: string, payload: JobEventPayload, outcome?: JobOutcome): void {
    const job = this.live.get(jobId);
    if (!job) return;
    job.seq += 1;
    const event: JobEvent = { jobId, seq: job.seq, event: payload.event, data: payload.data, at: new Date().toISOString() };
    this.journal.append(jobId, { seq: event.seq, event: event.event, data: event.data, at: event.at });
    job.events.push(event);
    for (const listener of job.listeners) listener(event);
    if (isTerminal(payload.event)) {
      this.live.delete(jobId);
      this.onTerminal(jobId, outcome);
      this.notifyIdle();
    }
  }

  /**
   * Replays after `afterSeq`, then delivers live events until the terminal one. A live job replays from
   * memory; an ended one (or one of an earlier run) from the journal.
   */
  async subscribe(jobId: string, afterSeq: number, listener: Listener): Promise<() => void> {
    const job = this.live.get(jobId);
    if (job) {
      // Live: everything it emitted is in memory. Replay and attach in one synchronous step.
      let last = afterSeq;
      const deliver: Listener = (event) => {
        if (event.seq !== last + 1) return;
        last = event.seq;
        listener(event);
      };
      for (const event of job.events) deliver(event);
      job.listeners.add(deliver);
      return () => job.listeners.delete(deliver);
    }
    // Ended (here or in an earlier run): the journal has all of it, terminal event included.
    let last = afterSeq;
    for (const stored of await this.journal.eventsAfter(jobId, afterSeq)) {
      if (stored.seq !== last + 1) continue;
      last = stored.seq;
      listener({ jobId, ...stored, event: stored.event as JobEvent['event'] });
    }
    return () => undefined;
  }

  private notifyIdle(): void {
    if (this.live.size > 0) return;
    for (const resolve of this.idle.splice(0)) resolve();
  }
}
