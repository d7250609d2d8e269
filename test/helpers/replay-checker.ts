import { TestClient, type EventFrame } from './gateway.js';

const TERMINAL = new Set(['done', 'error', 'cancelled']);

/** Waits until `check` holds, polling the frames the clients collect. */
export async function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Subscribes to jobs (as the owner of `token`, when given) and collects their replays, on a new
 * connection every 15 subscriptions: a connection may send 20 frames a second.
 */
export class ReplayChecker {
  private client: TestClient | undefined;
  private sent = 0;

  constructor(
    private readonly wsUrl: string,
    private readonly options: { token?: string; timeoutMs?: number } = {},
  ) {}

  /** Every event of `jobId` after `afterSeq`, to the terminal one; throws when the subscription is refused. */
  async replay(jobId: string, afterSeq: number): Promise<EventFrame[]> {
    if (this.client === undefined || this.sent >= 15) {
      this.client?.close();
      this.client = await TestClient.connect(this.wsUrl, this.options.token === undefined ? {} : { Authorization: `Bearer ${this.options.token}` });
      this.sent = 0;
    }
    const client = this.client;
    this.sent += 1;
    const from = client.frames.length;
    client.send({ type: 'subscribe', jobId, afterSeq });
    await client.waitFor(
      (f) => (f.type === 'event' && f.jobId === jobId && TERMINAL.has(String(f.event))) || f.type === 'error',
      this.options.timeoutMs ?? 15_000,
      from,
    );
    const refused = client.frames.slice(from).find((f) => f.type === 'error');
    if (refused !== undefined) throw new Error(`subscribe ${jobId} refused: ${JSON.stringify(refused)}`);
    return client.frames.slice(from).filter((f): f is EventFrame => f.type === 'event' && f.jobId === jobId);
  }

  close(): void {
    this.client?.close();
  }
}
