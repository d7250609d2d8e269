/** A job as a repeated `clientMsgId` finds it. */
export interface ClientMsgJob {
  jobId: string;
  conversationId: string;
}

interface Entry extends ClientMsgJob {
  createdAt: number;
}

/**
 * The `clientMsgId`s of recent jobs, in memory, so that a chat — nearly always new — needs no database
 * read to learn that it is not a repeat. The index knows every job made at or after `completeSince`
 * (those of this process, and those loaded at start); for anything older it says "ask the database".
 * Entries older than the window are dropped (nobody asks for them); beyond `capacity` the oldest is
 * evicted and `completeSince` moves up past it.
 */
export class RecentClientMsgIds {
  private readonly entries = new Map<string, Entry>();
  /** Every job with a clientMsgId created at or after this time (ms) is in the index. */
  private completeSince = Number.POSITIVE_INFINITY;

  constructor(
    private readonly windowMs: number,
    private readonly capacity = 50_000,
  ) {}

  /**
   * Fills the index from the database's jobs of a window that starts at `windowStart` (oldest first);
   * `complete` says whether that was all of them.
   */
  load(rows: ReadonlyArray<ClientMsgJob & { owner: string; clientMsgId: string; createdAt: Date }>, windowStart: Date, complete: boolean): void {
    for (const row of rows) this.set(row.owner, row.clientMsgId, row, row.createdAt.getTime());
    this.completeSince = complete ? windowStart.getTime() : (rows[0]?.createdAt.getTime() ?? windowStart.getTime());
  }

  /** The job of `owner` and `clientMsgId` made since `since`; null when surely none; undefined when unknown here. */
  find(owner: string, clientMsgId: string, since: Date): ClientMsgJob | null | undefined {
    const entry = this.entries.get(key(owner, clientMsgId));
    if (entry !== undefined && entry.createdAt >= since.getTime()) return { jobId: entry.jobId, conversationId: entry.conversationId };
    return this.completeSince <= since.getTime() ? null : undefined;
  }

  /** A job with a clientMsgId was stored. */
  add(owner: string, clientMsgId: string, job: ClientMsgJob, createdAt: Date): void {
    this.set(owner, clientMsgId, job, createdAt.getTime());
  }

  /** A job was erased (its accept was reported failed): it is no one's earlier job. */
  remove(jobId: string): void {
    for (const [id, entry] of this.entries) {
      if (entry.jobId === jobId) this.entries.delete(id);
    }
  }

  private set(owner: string, clientMsgId: string, job: ClientMsgJob, createdAt: number): void {
    const id = key(owner, clientMsgId);
    this.entries.delete(id);
    this.entries.set(id, { jobId: job.jobId, conversationId: job.conversationId, createdAt });
    // The map is in the order entries were made: the oldest come first.
    for (const [oldestId, oldest] of this.entries) {
      const outOfWindow = oldest.createdAt < createdAt - this.windowMs;
      if (!outOfWindow && this.entries.size <= this.capacity) break;
      this.entries.delete(oldestId);
      // Evicted while still in the window: from now on the index is complete only after it.
      if (!outOfWindow && this.completeSince !== Number.POSITIVE_INFINITY) this.completeSince = Math.max(this.completeSince, oldest.createdAt + 1);
    }
  }
}

function key(owner: string, clientMsgId: string): string {
  return `${owner}\u0000${clientMsgId}`;
}
