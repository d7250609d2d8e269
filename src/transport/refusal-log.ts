import type { Logger } from 'pino';

/** What is logged about one refusal: the HTTP status (or close code) and a short reason. */
export interface Refusal {
  status: number;
  reason: string;
}

export interface RefusalLogOptions {
  log: Logger;
  /** The message of each line (`websocket upgrade refused`, …). */
  message: string;
  /** One line per address per window. Default one minute. */
  windowMs?: number;
  /** Addresses tracked at once; refusals from further ones are only counted. Default 10 000. */
  maxAddresses?: number;
  /** Milliseconds, monotonic; tests pass their own. Default `performance.now`. */
  now?: () => number;
}

interface Window {
  startedAt: number;
  /** Refusals after the logged one, not logged yet. */
  suppressed: number;
  /** The status of the last of them, so the count says what kept being refused. */
  lastStatus: number;
}

const DEFAULT_WINDOW_MS = 60_000;
const DEFAULT_MAX_ADDRESSES = 10_000;

/**
 * Logs refusals (of upgrades, of requests) at most once per window per remote address, so a client
 * retrying 5000 times writes two lines, not 5000: the first refusal is logged at once, the rest are
 * counted, and the count is logged when the window is over (by the sweep that runs once per window) or
 * with the address's next line, whichever comes first. The map holds only addresses refused in the
 * current or the last window, and at most `maxAddresses` of them: beyond that refusals are counted in
 * one total, logged by the sweep.
 */
export class RefusalLog {
  private readonly windows = new Map<string, Window>();
  private readonly windowMs: number;
  private readonly maxAddresses: number;
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;
  /** Refusals from addresses beyond `maxAddresses`, not logged yet. */
  private untracked = 0;

  constructor(private readonly options: RefusalLogOptions) {
    this.windowMs = options.windowMs ?? DEFAULT_WINDOW_MS;
    this.maxAddresses = options.maxAddresses ?? DEFAULT_MAX_ADDRESSES;
    this.now = options.now ?? (() => performance.now());
    this.sweeper = setInterval(() => this.sweep(), this.windowMs);
    // The sweep alone must not keep the process alive.
    this.sweeper.unref();
  }

  /** Notes one refusal of a request from `remote`; logs it unless this address was logged in this window. */
  note(remote: string | undefined, refusal: Refusal): void {
    const address = remote ?? 'unknown';
    const now = this.now();
    const window = this.windows.get(address);
    if (window !== undefined && now - window.startedAt < this.windowMs) {
      window.suppressed++;
      window.lastStatus = refusal.status;
      return;
    }
    if (window !== undefined) {
      this.logSuppressed(address, window);
      this.windows.delete(address);
    } else if (this.windows.size >= this.maxAddresses) {
      this.untracked++;
      return;
    }
    this.windows.set(address, { startedAt: now, suppressed: 0, lastStatus: refusal.status });
    this.options.log.info({ remote: address, status: refusal.status, reason: refusal.reason }, this.options.message);
  }

  /** Logs the counts of windows that are over and forgets their addresses. */
  sweep(): void {
    const now = this.now();
    for (const [address, window] of this.windows) {
      if (now - window.startedAt < this.windowMs) continue;
      this.logSuppressed(address, window);
      this.windows.delete(address);
    }
    this.logUntracked();
  }

  /** Addresses held now (for tests: the map stays bounded). */
  get size(): number {
    return this.windows.size;
  }

  /** Stops the sweep and logs every count not logged yet. */
  close(): void {
    clearInterval(this.sweeper);
    for (const [address, window] of this.windows) this.logSuppressed(address, window);
    this.windows.clear();
    this.logUntracked();
  }

  private logSuppressed(address: string, window: Window): void {
    if (window.suppressed === 0) return;
    this.options.log.info(
      { remote: address, refused: window.suppressed, lastStatus: window.lastStatus, windowMs: this.windowMs },
      `${this.options.message} (repeated; not logged one by one)`,
    );
  }

  private logUntracked(): void {
    if (this.untracked === 0) return;
    this.options.log.warn({ refused: this.untracked, maxAddresses: this.maxAddresses }, `${this.options.message} (from too many addresses to log each)`);
    this.untracked = 0;
  }
}
