import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { EventFrame, ServerFrame } from '../src/transport/ws-frames.js';
import { start, stopAll, TestClient, until, type Step } from './helpers/ws-harness.js';

afterEach(stopAll);

const KIB = 1024;
const MIB = 1024 * KIB;

/** `count` `result` steps of `chunkChars` characters each, each one recognisable by its index. */
function resultSteps(count: number, chunkChars: number): Step[] {
  return Array.from({ length: count }, (_, i) => ({ event: 'result', data: { content: chunk(i, chunkChars) } }));
}

function chunk(i: number, chars: number): string {
  const head = `[${i}]`;
  return head + String.fromCharCode(97 + (i % 26)).repeat(chars - head.length);
}

/** Checks a job's events: seq 1..n once each, in order, the terminal one last, and the answer whole. */
function expectWholeAnswer(events: EventFrame[], count: number, chunkChars: number, firstSeq = 1): void {
  expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => firstSeq + i));
  expect(events.at(-1)?.event).toBe('done');
  const results = events.filter((e) => e.event === 'result');
  expect(results).toHaveLength(count);
  results.forEach((e, i) => expect(e.data.content).toBe(chunk(i, chunkChars)));
}

describe('WebSocket pacing', () => {
  it('replays a 10 MB answer as 16 KiB results over one connection to a client that reads normally', async () => {
    const { url, runtime } = await start();
    const count = 640;
    const chunkChars = 16 * KIB;
    const jobId = runtime.open('anonymous');
    for (const step of resultSteps(count, chunkChars)) runtime.emit(jobId, step.event, step.data);
    runtime.emit(jobId, 'done');

    const client = await TestClient.open(url);
    client.send({ type: 'subscribe', jobId });
    const events = await client.eventsUntilTerminal(jobId, 10_000);
    expectWholeAnswer(events, count, chunkChars);
    expect(client.ws.readyState).toBe(WebSocket.OPEN);
    await client.expectAlive();
    // Again, from the middle: the same connection serves a second long replay.
    client.send({ type: 'subscribe', jobId, afterSeq: 320 });
    const rest = await client.eventsUntilTerminal(jobId, 10_000);
    expect(rest.map((e) => e.seq)).toEqual(Array.from({ length: 321 }, (_, i) => 321 + i));
    expect(client.frames.every((frame) => frame.type !== 'error')).toBe(true);
  });

  it('keeps accepted first and the terminal event last when a chat emits 10 MB at once', async () => {
    const { url, runtime } = await start();
    const count = 640;
    const chunkChars = 16 * KIB;
    runtime.script = () => [{ event: 'ack' }, ...resultSteps(count, chunkChars), { event: 'done' }];
    const client = await TestClient.open(url);
    client.send({ type: 'chat', text: 'long', clientMsgId: 'm-1' });
    const accepted = await client.next();
    expect(accepted).toMatchObject({ type: 'accepted', clientMsgId: 'm-1' });
    if (accepted.type !== 'accepted') throw new Error('expected accepted');
    const events = await client.eventsUntilTerminal(accepted.jobId, 10_000);
    expect(events[0]?.event).toBe('ack');
    expectWholeAnswer(events, count, chunkChars);
    await client.expectAlive();
  });

  it('serves several long replays asked for at once, one after another, within a small queue bound', async () => {
    const maxQueuedBytes = 2 * MIB;
    const { url, runtime } = await start({ maxQueuedBytes, maxFramesPerSecond: 1_000 });
    const count = 96;
    const chunkChars = 16 * KIB;
    // Four answers of 1.5 MiB: together three times the bound.
    const jobIds = Array.from({ length: 4 }, () => {
      const jobId = runtime.open('anonymous');
      for (const step of resultSteps(count, chunkChars)) runtime.emit(jobId, step.event, step.data);
      runtime.emit(jobId, 'done');
      return jobId;
    });
    const client = await TestClient.open(url);
    for (const jobId of jobIds) client.send({ type: 'subscribe', jobId });
    const byJob = new Map<string, EventFrame[]>();
    while ([...byJob.values()].filter((events) => events.at(-1)?.event === 'done').length < jobIds.length) {
      const frame = await client.next(10_000);
      if (frame.type !== 'event') throw new Error(`unexpected ${JSON.stringify(frame).slice(0, 200)}`);
      byJob.set(frame.jobId, [...(byJob.get(frame.jobId) ?? []), frame]);
    }
    for (const jobId of jobIds) expectWholeAnswer(byJob.get(jobId) ?? [], count, chunkChars);
    await client.expectAlive();
  });

  it('closes a client that never reads with 1013 once its queue is over the bound; another client of the same job is unaffected', async () => {
    const { url, runtime, attached } = await start({ maxQueuedBytes: 4 * MIB });
    const jobId = runtime.open('anonymous');
    const stuck = await TestClient.open(url);
    const reader = await TestClient.open(url);
    stuck.send({ type: 'subscribe', jobId });
    reader.send({ type: 'subscribe', jobId });
    await until(() => runtime.listenerCount(jobId) === 2);
    stuck.socket.pause();

    const lags: number[] = [];
    reader.ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as ServerFrame;
      if (frame.type === 'event') lags.push(Date.now() - Number(frame.data.sentAt));
    });
    // Push until the server lets go of the stuck client (its subscription is released at once); the
    // kernel's socket buffers absorb a few MB first, so the amount needed depends on the machine.
    const big = 'x'.repeat(64 * KIB);
    let pushed = 0;
    while (runtime.listenerCount(jobId) > 1) {
      if (pushed > 200 * MIB) throw new Error('the stuck client was never closed');
      for (let i = 0; i < 8; i++) runtime.emit(jobId, 'result', { content: big, sentAt: Date.now() });
      pushed += 8 * big.length;
      await new Promise((resolve) => setImmediate(resolve));
    }
    runtime.emit(jobId, 'done', { sentAt: Date.now() });
    const events = await reader.eventsUntilTerminal(jobId, 20_000);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1));
    expect(events.at(-1)?.event).toBe('done');
    expect(lags).toHaveLength(events.length);
    // The reader was never held up by the stuck one (no frame waited behind its backlog).
    expect(Math.max(...lags)).toBeLessThan(1_000);

    // Reading again, the stuck client finds the close frame behind what the kernel held: 1013.
    stuck.socket.resume();
    expect((await stuck.closed).code).toBe(1013);
    await until(() => attached.clientCount() === 1);
    await reader.expectAlive();
  });

  it('closes a client whose queue has not moved for stallMs with 1013', async () => {
    const { url, runtime } = await start({ stallMs: 20, heartbeatMs: 100, maxQueuedBytes: 1024 * MIB });
    const jobId = runtime.open('anonymous');
    const stuck = await TestClient.open(url);
    stuck.send({ type: 'subscribe', jobId });
    await until(() => runtime.listenerCount(jobId) === 1);
    stuck.socket.pause();
    // More than the kernel's socket buffers hold on loopback, at once: the rest waits in the queue.
    const big = 'y'.repeat(64 * KIB);
    for (let i = 0; i < 640; i++) runtime.emit(jobId, 'result', { content: big });
    await until(() => runtime.listenerCount(jobId) === 0);
    stuck.socket.resume();
    expect((await stuck.closed).code).toBe(1013);
  });
});
