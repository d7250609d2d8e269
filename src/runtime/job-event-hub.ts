import type { JobJournal, JournalEvent } from '../actors/store/job-journal.js';
import { isTerminal, type JobEvent, type JobEventPayload } from '../jobs/job-event.js';
import type { JobOutcome } from '../machines/job-machine.js';

type Listener = (event: JobEvent) => void;

interface LiveJob {
  owner: string;
  seq: number;
  listeners: Set<Listener>;
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
    this.live.set(jobId, { owner, seq: 0, listeners: new Set() });
  }

  /** Forgets a job that was never started (its submission failed). */
  discard(jobId: string): void {
    this.live.delete(jobId);
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
    for (const listener of job.listeners) listener(event);
    if (isTerminal(payload.event)) {
      this.live.delete(jobId);
      this.onTerminal(jobId, outcome);
      this.notifyIdle();
    }
  }

  /**
   * Replays the journal after `afterSeq`, then delivers live events until the terminal one. The live
   * listener is attached before the replay is read, and events are delivered strictly by seq, so none is
   * lost or doubled between the two.
   */
  async subscribe(jobId: string, afterSeq: number, listener: Listener): Promise<() => void> {
    const job = this.live.get(jobId);
    let last = afterSeq;
    let replaying = true;
    const held: JobEvent[] = [];
    const deliver = (event: JobEvent): void => {
      if (event.seq !== last + 1) return;
      last = event.seq;
      listener(event);
    };
    const live: Listener = (event) => (replaying ? held.push(event) : deliver(event));
    job?.listeners.add(live);
    let replay: JournalEvent[];
    try {
      replay = await this.journal.eventsAfter(jobId, afterSeq);
    } catch (error) {
      job?.listeners.delete(live);
      throw error;
    }
    for (const stored of replay) deliver({ jobId, ...stored, event: stored.event as JobEvent['event'] });
    for (const event of held) if (event.seq > last) deliver(event);
    replaying = false;
    return () => job?.listeners.delete(live);
  }

  private notifyIdle(): void {
    if (this.live.size > 0) return;
    for (const resolve of this.idle.splice(0)) resolve();
  }
}
