/**
 * Small helpers over `TestClient` for tests that need exact control of a chat frame (their own
 * `clientMsgId`, raw JSON text) and for the event contract of DESIGN §4.
 */
import { expect } from 'vitest';
import type { EventFrame, Frame, TestClient } from './gateway.js';

export const TERMINAL_EVENTS = ['done', 'error', 'cancelled'];

/**
 * Sends a chat (an object, or raw JSON text) that carries `clientMsgId`, and resolves with the reply
 * to it: its `accepted` or its `error` frame (both name the chat's `clientMsgId`).
 */
export async function sendChat(client: TestClient, frame: Record<string, unknown> | string, clientMsgId: string, timeoutMs = 10_000): Promise<Frame> {
  const from = client.frames.length;
  client.send(frame);
  return client.waitFor((f) => (f.type === 'accepted' || f.type === 'error') && f['clientMsgId'] === clientMsgId, timeoutMs, from);
}

/** Sends a frame that is not a chat and resolves with the first `error` frame after it. */
export async function sendForError(client: TestClient, frame: Record<string, unknown> | string, timeoutMs = 5_000): Promise<Frame> {
  const from = client.frames.length;
  client.send(frame);
  return client.waitFor((f) => f.type === 'error', timeoutMs, from);
}

/** Sends a ping and waits for its pong: every frame sent before it on this connection has been read. */
export async function roundTrip(client: TestClient, timeoutMs = 5_000): Promise<void> {
  const from = client.frames.length;
  client.send({ type: 'ping' });
  await client.waitFor((f) => f.type === 'pong', timeoutMs, from);
}

/** Subscribes to a job from `afterSeq` and resolves with its events from there to the terminal one. */
export async function replay(client: TestClient, jobId: string, afterSeq = 0, timeoutMs = 10_000): Promise<EventFrame[]> {
  const from = client.frames.length;
  client.send({ type: 'subscribe', jobId, afterSeq });
  const found = await client.waitFor(
    (f) => (f.type === 'event' && f['jobId'] === jobId && TERMINAL_EVENTS.includes(String(f['event']))) || f.type === 'error',
    timeoutMs,
    from,
  );
  if (found.type === 'error') throw new Error(`subscribe refused: ${JSON.stringify(found)}`);
  return eventsOf(client.frames.slice(from), jobId);
}

/** The event frames of one job among `frames`. */
export function eventsOf(frames: readonly Frame[], jobId: string): EventFrame[] {
  return frames.filter((f): f is EventFrame => f.type === 'event' && f['jobId'] === jobId);
}

/** Checks the contract on a job's events: seq 1..n, exactly one terminal event, and it is last. */
export function checkContract(events: readonly EventFrame[], terminal?: string): void {
  expect(events.length).toBeGreaterThan(0);
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  const terminals = events.filter((e) => TERMINAL_EVENTS.includes(e.event));
  expect(terminals).toHaveLength(1);
  expect(events.at(-1)).toBe(terminals[0]);
  if (terminal !== undefined) expect(events.at(-1)?.event).toBe(terminal);
}

/** Waits until `check` holds, polling; fails with `what` after `timeoutMs`. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A promise with its resolve function: a gate a fake's reply waits on until the test opens it. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}
