import { setTimeout as sleep } from 'node:timers/promises';
import { readMetric, startBenchGateway } from './bench-gateway.js';
import { ChatSocket } from './chat-socket.js';
import { startGatedFake } from './gated-fake.js';
import { stats } from './harness.js';

/** What the fake saw of a queue of jobs on a single-slot backend. */
export interface MailboxQueueResult {
  jobs: number;
  /** Jobs waiting in the backend's mailbox (`/metrics`) when the first answer was let go. */
  queued: number;
  /** How the jobs ended, by terminal event. */
  ended: Record<string, number>;
  /** The most requests the fake had open at once: must be 1. */
  maxConcurrent: number;
  /** Served in the order submitted; else the index of the first one out of place. */
  fifo: boolean;
  firstOutOfOrder: number | null;
  /** The fake's own clock, ms: one request's response end → the next request's arrival. */
  gapMs: { median: number; p99: number };
}

const waiting = (url: string) => readMetric(url, 'switchboard_backend_queue_waiting{backend="fake"}');

/**
 * The mailbox end to end: the gateway in its own process with one backend of concurrency 1, one owner,
 * `count` chats (the mode `daily`, one request each) sent over WebSocket as fast as the gateway takes
 * them (`ChatSocket.chats`), 250 per connection one connection after the other, so the order submitted
 * is known. The fake holds the first request until every job is accepted and waiting in the mailbox,
 * then answers everything as it comes. FIFO is expected: one
 * owner's requests are served in arrival order (fair across owners only).
 */
export async function benchMailboxQueue(databaseUrl: string | null = null, count = 500): Promise<MailboxQueueResult> {
  const fake = await startGatedFake();
  const gateway = await startBenchGateway(fake.baseUrl, databaseUrl, 1);
  const sockets = await Promise.all(Array.from({ length: Math.ceil(count / 250) }, () => ChatSocket.connect(gateway.wsUrl)));
  try {
    // Warm up the path, one chat at a time, then forget what the fake saw of it.
    for (let i = 0; i < 50; i++) await sockets[0]!.chat(`warm ${i}`, 'daily').ended;
    const warm = await fake.report();
    fake.close();
    const texts = Array.from({ length: count }, (_, i) => `queued ${i}`);
    const chats = [];
    for (let from = 0; from < count; from += 250) chats.push(...(await sockets[from / 250]!.chats(texts.slice(from, from + 250), 'daily')));
    let queued = await waiting(gateway.url);
    for (let tries = 0; queued < count - 1 && tries < 100; tries++) {
      await sleep(50);
      queued = await waiting(gateway.url);
    }
    fake.open();
    const ended: Record<string, number> = {};
    for (const event of await Promise.all(chats.map((chat) => chat.ended))) ended[event] = (ended[event] ?? 0) + 1;
    const seen = await fake.report();
    const served = seen.served.slice(warm.served.length);
    const firstOutOfOrder = texts.findIndex((text, i) => served[i] !== text);
    const { median, p99 } = stats(seen.gaps.slice(warm.gaps.length));
    return {
      jobs: count,
      queued,
      ended,
      maxConcurrent: seen.maxConcurrent,
      fifo: firstOutOfOrder === -1 && served.length === count,
      firstOutOfOrder: firstOutOfOrder === -1 ? null : firstOutOfOrder,
      gapMs: { median, p99 },
    };
  } finally {
    for (const socket of sockets) socket.close();
    await gateway.stop();
    await fake.stop();
  }
}
