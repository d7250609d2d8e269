import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ChatRequest } from '../src/actors/inference/types.js';
import { readBackendStatus } from '../src/runtime/backend-registry.js';
import { startFakeBackend, type FakeBackend, type FakeRequestBody } from './fakes/fake-openai-backend.js';
import { startBackendActor, until } from './helpers/backend-actor.js';
import { request } from './helpers/requester.js';

/** The server sees an abort this soon: far below every timeout that could close the connection too, and
 * wide enough for a loaded 2-core machine (the fake shares this process's event loop). */
const ABORT_SEEN_WITHIN_MS = 500;

let fake: FakeBackend;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => void unhandled.push(reason);

beforeAll(async () => {
  fake = await startFakeBackend();
  process.on('unhandledRejection', onUnhandled);
});
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await fake.close();
});
afterEach(async () => {
  expect(unhandled).toEqual([]);
  fake.setDefault({ content: ['Hello', ' world'] });
  await fake.setDown(false);
  fake.resetStats();
});

const lastUserText = (body: FakeRequestBody | null): string => String(body?.messages.at(-1)?.content ?? '');

describe('backend mailbox', () => {
  it('serves 200 concurrent mixed-priority requests one at a time, foreground first', async () => {
    const { actor, errors } = startBackendActor(fake, { concurrency: 1 });
    fake.setDefault((body) => ({ content: [`echo:${lastUserText(body)}`] }));
    const requesters = Array.from({ length: 200 }, (_, i) =>
      request(actor, `req-${i}`, { priority: i % 3 === 0 ? 'background' : 'foreground', kind: i % 2 ? 'stream' : 'complete' }),
    );
    const terminals = await Promise.all(requesters.map((r) => r.terminal));
    expect(terminals.every((t) => t.type === 'infer.done')).toBe(true);
    requesters.forEach((r, i) => {
      const done = r.replies.at(-1);
      expect(done?.type === 'infer.done' && done.result.content).toBe(`echo:req-${i}`);
    });
    expect(fake.maxConcurrent).toBe(1);
    expect(fake.chatRequests).toHaveLength(200);

    // The first request found the slot free; every foreground one after it went before every background one.
    const served = fake.chatRequests.slice(1).map((r) => Number(lastUserText(r.body).slice(4)));
    const firstBackground = served.findIndex((i) => i % 3 === 0);
    expect(served.slice(firstBackground).every((i) => i % 3 === 0)).toBe(true);
    expect(served.slice(0, firstBackground)).toEqual(served.slice(0, firstBackground).toSorted((a, b) => a - b));
    // Waiting requesters were told their place.
    expect(requesters[199]?.replies.some((r) => r.type === 'infer.queued')).toBe(true);
    expect(readBackendStatus(actor).queue).toEqual({ waiting: 0, running: 0 });
    expect(errors).toEqual([]);
    actor.stop();
  });

  it('serves a background request past its aging limit before a newer foreground one, not before an older one', async () => {
    const { actor } = startBackendActor(fake, { concurrency: 1, maxBackgroundWaitMs: 150 });
    fake.setDefault((body) => ({ content: ['x'], headersDelayMs: lastUserText(body) === 'hold' ? 300 : 0 }));
    const hold = request(actor, 'hold');
    await hold.started;
    const olderForeground = request(actor, 'fg-old');
    const background = request(actor, 'bg', { priority: 'background' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const newerForeground = request(actor, 'fg-new');
    await Promise.all([hold, olderForeground, background, newerForeground].map((r) => r.terminal));
    expect(fake.chatRequests.map((r) => lastUserText(r.body))).toEqual(['hold', 'fg-old', 'bg', 'fg-new']);
    actor.stop();
  });

  it('never sends a request cancelled while queued to the server', async () => {
    const { actor } = startBackendActor(fake);
    fake.setDefault({ content: ['x'], headersDelayMs: 150 });
    const first = request(actor, 'first');
    const queued = request(actor, 'cancelled-in-queue');
    const third = request(actor, 'third');
    await first.started;
    queued.cancel();
    expect((await queued.terminal).type).toBe('infer.cancelled');
    await Promise.all([first.terminal, third.terminal]);
    expect(fake.chatRequests.map((r) => lastUserText(r.body))).toEqual(['first', 'third']);
    expect(queued.replies.some((r) => r.type === 'infer.started')).toBe(false);
    actor.stop();
  });

  it('aborts a running stream (the server sees it close at once) and starts the next only afterwards', async () => {
    const { actor } = startBackendActor(fake);
    fake.setDefault((body) =>
      lastUserText(body) === 'long' ? { content: Array.from({ length: 200 }, () => 'tick '), chunkDelayMs: 20 } : { content: ['next'] },
    );
    const long = request(actor, 'long');
    const next = request(actor, 'next');
    await until(() => long.text().length > 0, 5_000, 'first chunk');
    const cancelledAt = Date.now();
    long.cancel();
    const aborted = await fake.waitForClientAbort(2_000);
    expect(aborted.abortedAt! - cancelledAt).toBeLessThan(ABORT_SEEN_WITHIN_MS);
    expect((await long.terminal).type).toBe('infer.cancelled');
    expect((await next.terminal).type).toBe('infer.done');
    const nextRecord = fake.chatRequests.find((r) => lastUserText(r.body) === 'next');
    expect(nextRecord!.startedAt).toBeGreaterThanOrEqual(aborted.abortedAt!);
    expect(fake.maxConcurrent).toBe(1);
    actor.stop();
  });

  it('cancels the request of a requester actor that stops, queued or running', async () => {
    const { actor } = startBackendActor(fake);
    fake.setDefault({ content: Array.from({ length: 100 }, () => 'a'), chunkDelayMs: 20 });
    const running = request(actor, 'running');
    const queued = request(actor, 'queued');
    await until(() => running.text().length > 0, 5_000, 'first chunk');
    queued.stop();
    running.stop();
    await fake.waitForClientAbort(2_000);
    await until(() => readBackendStatus(actor).queue.running === 0, 2_000, 'slot freed');
    expect(fake.chatRequests.map((r) => lastUserText(r.body))).toEqual(['running']);
    expect(readBackendStatus(actor).queue).toEqual({ waiting: 0, running: 0 });
    actor.stop();
  });

  const faults: Array<[string, Parameters<FakeBackend['setDefault']>[0] | 'refuse', string, number]> = [
    ['refused connection', 'refuse', 'backend_unavailable', 1_000],
    ['HTTP 500', { fault: 'http_500' }, 'backend_unavailable', 1_000],
    ['HTTP 400', { fault: 'http_400' }, 'backend_rejected', 1_000],
    ['hang before headers', { fault: 'hang_before_headers' }, 'backend_timeout', 1_000 + 1_500],
    ['stall mid-stream', { fault: 'stall_mid_stream' }, 'backend_timeout', 1_000 + 1_500],
    ['socket dropped mid-stream', { fault: 'drop_mid_stream' }, 'backend_disconnected', 1_000],
    ['malformed SSE', { fault: 'malformed_sse' }, 'backend_protocol_error', 1_000],
    ['slow drip', { fault: 'slow_drip' }, 'stream_deadline_exceeded', 1_500 + 1_500],
  ];
  for (const [name, reply, reason, withinMs] of faults) {
    it(`ends a request on ${name} with reason ${reason} in time, frees the slot, serves the next`, async () => {
      const { actor, errors } = startBackendActor(fake, { client: { streamDeadlineMs: 1_500, idleTimeoutMs: 1_000, firstByteTimeoutMs: 1_000 } });
      if (reply === 'refuse') await fake.setDown(true);
      else fake.setDefault(reply);
      const started = Date.now();
      const failing = request(actor, 'fault', { kind: 'stream' });
      const terminal = await failing.terminal;
      expect(Date.now() - started).toBeLessThan(withinMs);
      expect(terminal.type === 'infer.error' && terminal.error.reason).toBe(reason);

      await fake.setDown(false);
      fake.setDefault({ content: ['fine'] });
      const next = request(actor, 'next');
      const done = await next.terminal;
      expect(done.type === 'infer.done' && done.result.content).toBe('fine');
      expect(readBackendStatus(actor).queue).toEqual({ waiting: 0, running: 0 });
      expect(errors).toEqual([]);
      actor.stop();
    });
  }

  it('runs up to `concurrency` requests at once when the server has more slots', async () => {
    const { actor } = startBackendActor(fake, { concurrency: 4 });
    fake.setDefault({ content: ['x'], headersDelayMs: 50 });
    const all = Array.from({ length: 12 }, (_, i) => request(actor, `c${i}`));
    await Promise.all(all.map((r) => r.terminal));
    expect(fake.maxConcurrent).toBe(4);
    actor.stop();
  });

  it('assembles streamed tool calls into the result', async () => {
    const { actor } = startBackendActor(fake);
    fake.setDefault({ toolCalls: [{ name: 'search', arguments: ['{"query":', '"회의록"}'] }] });
    const chat: ChatRequest = {
      messages: [{ role: 'user', content: 'find' }],
      tools: [{ type: 'function', function: { name: 'search', parameters: { type: 'object' } } }],
    };
    const terminal = await request(actor, chat).terminal;
    expect(terminal.type === 'infer.done' && terminal.result.toolCalls.map((c) => [c.function.name, JSON.parse(c.function.arguments)])).toEqual([
      ['search', { query: '회의록' }],
    ]);
    actor.stop();
  });
});
