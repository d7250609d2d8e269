import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOpenAIClient, type OpenAIClient, type OpenAIClientOptions } from '../src/actors/inference/openai-client.js';
import type { ChatRequest } from '../src/actors/inference/types.js';
import {
  BackendProtocolError,
  BackendRequestError,
  BackendUnavailableError,
  CancelledError,
  StreamDeadlineError,
} from '../src/errors.js';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';

/** The server sees an abort this soon: far below every timeout that could close the connection too, and
 * wide enough for a loaded 2-core machine (the fake shares this process's event loop). */
const ABORT_SEEN_WITHIN_MS = 500;

/** Timed assertions get generous slack: they must not flake on a loaded 2-core machine. */
const SLACK_MS = 1_500;
const PRIVATE = 'secret prompt text 비밀';
const REQUEST: ChatRequest = { messages: [{ role: 'user', content: PRIVATE }] };

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};

let fake: FakeBackend;
const clients: OpenAIClient[] = [];

function client(overrides: Partial<OpenAIClientOptions> = {}): OpenAIClient {
  const created = createOpenAIClient({ baseUrl: fake.baseUrl, model: 'fake-model', statusUrl: fake.statusUrl, ...overrides });
  clients.push(created);
  return created;
}

function signal(): AbortSignal {
  return new AbortController().signal;
}

/** Runs `work`, expects it to reject, and returns the error with how long it took. */
async function failure(work: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = performance.now();
  try {
    await work();
  } catch (error) {
    return { error, ms: performance.now() - started };
  }
  throw new Error('expected the call to fail');
}

/** Error messages must never carry bodies: neither the prompt nor anything the server said. */
function expectNoBodies(error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  expect(message).not.toContain('secret');
  expect(message).not.toContain('fake failure');
  expect(message).not.toContain('oops');
}

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  fake = await startFakeBackend();
});

afterEach(async () => {
  await fake.setDown(false);
  fake.setDefault({ content: ['Hello', ' world'] });
  fake.status = null;
  fake.modelsDelayMs = 0;
  fake.modelsFault = null;
});

afterAll(async () => {
  await Promise.all(clients.map((each) => each.close()));
  await fake.close();
  // Late rejections (e.g. a body erroring after we already threw) surface within a few ticks.
  await new Promise((resolve) => setTimeout(resolve, 100));
  process.off('unhandledRejection', onUnhandled);
  expect(unhandled).toEqual([]);
});

describe('complete (non-streaming)', () => {
  it('returns the message content and sends the request as OpenAI expects it', async () => {
    fake.enqueue({ content: '안녕하세요' });
    const before = fake.requests.length;
    const result = await client({ apiKey: 'k-1' }).complete({ ...REQUEST, maxTokens: 50, temperature: 0.2, toolChoice: 'none' }, signal());
    expect(result).toEqual({ content: '안녕하세요', toolCalls: [], finishReason: 'stop' });
    const recorded = fake.requests[before];
    expect(recorded?.path).toBe('/v1/chat/completions');
    expect(recorded?.headers.authorization).toBe('Bearer k-1');
    expect(recorded?.body).toMatchObject({
      model: 'fake-model',
      stream: false,
      messages: [{ role: 'user', content: PRIVATE }],
      max_tokens: 50,
      temperature: 0.2,
      tool_choice: 'none',
    });
    expect(recorded?.body).not.toHaveProperty('tools');
  });

  it('returns tool calls with arguments kept as a JSON string and null content as ""', async () => {
    fake.enqueue({ toolCalls: [{ id: 'call_a', name: 'search', arguments: '{"query":"회의"}' }] });
    const result = await client().complete(REQUEST, signal());
    expect(result).toEqual({
      content: '',
      toolCalls: [{ id: 'call_a', type: 'function', function: { name: 'search', arguments: '{"query":"회의"}' } }],
      finishReason: 'tool_calls',
    });
  });

  it('answers by request content when the reply is a function', async () => {
    fake.enqueue((body) => ({ content: `echo:${body.messages.at(-1)?.content ?? ''}` }));
    const result = await client().complete({ messages: [{ role: 'user', content: 'ping' }] }, signal());
    expect(result.content).toBe('echo:ping');
  });

  it('maps a total time over timeoutMs to backend_timeout and closes the connection', async () => {
    fake.enqueue({ fault: 'slow_drip', chunkDelayMs: 20 });
    const { error, ms } = await failure(() => client({ timeoutMs: 300 }).complete(REQUEST, signal()));
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect((error as BackendUnavailableError).reason).toBe('backend_timeout');
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(300 + SLACK_MS);
    expect((await fake.waitForClientAbort()).path).toBe('/v1/chat/completions');
  });

  it('maps a body that is not JSON to BackendProtocolError', async () => {
    fake.enqueue({ fault: 'malformed_sse' });
    const { error } = await failure(() => client().complete(REQUEST, signal()));
    expect(error).toBeInstanceOf(BackendProtocolError);
    expectNoBodies(error);
  });

  it('maps a connection dropped mid-body to backend_disconnected', async () => {
    fake.enqueue({ fault: 'drop_mid_stream' });
    const { error } = await failure(() => client().complete(REQUEST, signal()));
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect((error as BackendUnavailableError).reason).toBe('backend_disconnected');
  });
});

describe('stream', () => {
  it('delivers content chunks in order and resolves with the assembled answer', async () => {
    const pieces = ['안', '녕', '하세요', ' — ', 'hello ', '🙂'];
    fake.enqueue({ content: pieces, chunkDelayMs: 5, heartbeat: true });
    const seen: string[] = [];
    const result = await client().stream(REQUEST, { signal: signal(), onContent: (text) => seen.push(text) });
    expect(seen).toEqual(pieces);
    expect(result).toEqual({ content: pieces.join(''), toolCalls: [], finishReason: 'stop' });
    expect(fake.requests.at(-1)?.body?.stream).toBe(true);
  });

  it('parses CRLF event streams', async () => {
    fake.enqueue({ content: ['a', 'b'], crlf: true });
    const result = await client().stream(REQUEST, { signal: signal(), onContent: () => {} });
    expect(result.content).toBe('ab');
  });

  it('assembles streamed tool call deltas by index', async () => {
    fake.enqueue({
      content: ['Let me look.'],
      toolCalls: [
        { id: 'call_x', name: 'search', arguments: ['{"qu', 'ery":', '"일정"}'] },
        { id: 'call_y', name: 'calendar_today', arguments: ['{', '}'] },
      ],
    });
    const result = await client().stream(REQUEST, { signal: signal(), onContent: () => {} });
    expect(result).toEqual({
      content: 'Let me look.',
      toolCalls: [
        { id: 'call_x', type: 'function', function: { name: 'search', arguments: '{"query":"일정"}' } },
        { id: 'call_y', type: 'function', function: { name: 'calendar_today', arguments: '{}' } },
      ],
      finishReason: 'tool_calls',
    });
  });

  it('accepts a stream that ends cleanly without [DONE]', async () => {
    fake.enqueue({ content: ['x', 'y'], omitDone: true, finishReason: 'length' });
    const result = await client().stream(REQUEST, { signal: signal(), onContent: () => {} });
    expect(result).toEqual({ content: 'xy', toolCalls: [], finishReason: 'length' });
  });

  it('accepts a server that ignores stream:true and answers one JSON body', async () => {
    fake.enqueue({ content: 'whole', ignoreStream: true });
    const seen: string[] = [];
    const result = await client().stream(REQUEST, { signal: signal(), onContent: (text) => seen.push(text) });
    expect(seen).toEqual(['whole']);
    expect(result.content).toBe('whole');
  });

  it('reuses the keep-alive connection across calls', async () => {
    const shared = client();
    for (let n = 0; n < 4; n += 1) await shared.stream(REQUEST, { signal: signal(), onContent: () => {} });
    const recent = fake.requests.slice(-4);
    expect(recent.every((request) => !request.clientAborted)).toBe(true);
    // undici's pool may open a second connection while the first is being released; never one per call.
    expect(new Set(recent.map((request) => request.connectionId)).size).toBeLessThanOrEqual(2);
  });

  it('resolves at [DONE] even when the server keeps the response open, then drops the connection', async () => {
    fake.enqueue({ content: ['done'], holdAfterDone: true });
    const started = performance.now();
    const result = await client({ idleTimeoutMs: 200 }).stream(REQUEST, { signal: signal(), onContent: () => {} });
    expect(result.content).toBe('done');
    expect(performance.now() - started).toBeLessThan(200 + SLACK_MS);
    await fake.waitForClientAbort();
  });
});

describe('faults', () => {
  it('connection refused → backend_unavailable', async () => {
    await fake.setDown(true);
    const { error, ms } = await failure(() => client().stream(REQUEST, { signal: signal(), onContent: () => {} }));
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect((error as BackendUnavailableError).reason).toBe('backend_unavailable');
    expect((error as Error).message).toMatch(/ECONNREFUSED/);
    expect(ms).toBeLessThan(SLACK_MS);
  });

  it('an unresolvable host → backend_unavailable', async () => {
    const { error } = await failure(() =>
      client({ baseUrl: 'http://switchboard-test.invalid/v1', firstByteTimeoutMs: 15_000 }).complete(REQUEST, signal()),
    );
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect((error as BackendUnavailableError).reason).toBe('backend_unavailable');
  }, 20_000);

  it('a refuse reply drops the connection and takes the fake down for the next ones', async () => {
    fake.enqueue({ fault: 'refuse' });
    const refusing = client();
    const first = await failure(() => refusing.complete(REQUEST, signal()));
    expect((first.error as BackendUnavailableError).reason).toBe('backend_unavailable');
    const second = await failure(() => refusing.complete(REQUEST, signal()));
    expect((second.error as Error).message).toMatch(/ECONNREFUSED/);
  });

  it('HTTP 500 → backend_unavailable with the status', async () => {
    fake.enqueue({ fault: 'http_500' });
    const { error } = await failure(() => client().stream(REQUEST, { signal: signal(), onContent: () => {} }));
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect((error as BackendUnavailableError).reason).toBe('backend_unavailable');
    expect((error as BackendUnavailableError).status).toBe(500);
    expectNoBodies(error);
  });

  it('HTTP 400 → BackendRequestError with the status', async () => {
    fake.enqueue({ fault: 'http_400' });
    const { error } = await failure(() => client().complete(REQUEST, signal()));
    expect(error).toBeInstanceOf(BackendRequestError);
    expect((error as BackendRequestError).status).toBe(400);
    expectNoBodies(error);
  });

  it('no headers within firstByteTimeoutMs → backend_timeout, and the socket is closed', async () => {
    fake.enqueue({ fault: 'hang_before_headers' });
    const { error, ms } = await failure(() =>
      client({ firstByteTimeoutMs: 200 }).stream(REQUEST, { signal: signal(), onContent: () => {} }),
    );
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect((error as BackendUnavailableError).reason).toBe('backend_timeout');
    expect(ms).toBeGreaterThanOrEqual(180);
    expect(ms).toBeLessThan(200 + SLACK_MS);
    await fake.waitForClientAbort();
  });

  it('headers and heartbeats but no first event within firstByteTimeoutMs → backend_timeout', async () => {
    // Comments keep bytes flowing faster than idleTimeoutMs, but they are not events.
    fake.enqueue({ fault: 'hang_after_headers', chunkDelayMs: 20 });
    const { error, ms } = await failure(() =>
      client({ firstByteTimeoutMs: 300, idleTimeoutMs: 100 }).stream(REQUEST, { signal: signal(), onContent: () => {} }),
    );
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect((error as BackendUnavailableError).reason).toBe('backend_timeout');
    expect(ms).toBeGreaterThanOrEqual(280);
    expect(ms).toBeLessThan(300 + SLACK_MS);
    await fake.waitForClientAbort();
  });

  it('stall mid-stream → backend_timeout via idleTimeoutMs', async () => {
    fake.enqueue({ fault: 'stall_mid_stream', content: ['first'] });
    const seen: string[] = [];
    const { error, ms } = await failure(() =>
      client({ idleTimeoutMs: 200 }).stream(REQUEST, { signal: signal(), onContent: (text) => seen.push(text) }),
    );
    expect(seen).toEqual(['first']);
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect((error as BackendUnavailableError).reason).toBe('backend_timeout');
    expect(ms).toBeGreaterThanOrEqual(180);
    expect(ms).toBeLessThan(200 + SLACK_MS);
    await fake.waitForClientAbort();
  });

  it('drop mid-stream → backend_disconnected', async () => {
    fake.enqueue({ fault: 'drop_mid_stream', content: ['first'] });
    const seen: string[] = [];
    const { error } = await failure(() => client().stream(REQUEST, { signal: signal(), onContent: (text) => seen.push(text) }));
    expect(seen).toEqual(['first']);
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect((error as BackendUnavailableError).reason).toBe('backend_disconnected');
  });

  it('malformed SSE data → BackendProtocolError, and the stream is abandoned', async () => {
    fake.enqueue({ fault: 'malformed_sse', content: ['ok'], chunkDelayMs: 20 });
    const { error } = await failure(() => client().stream(REQUEST, { signal: signal(), onContent: () => {} }));
    expect(error).toBeInstanceOf(BackendProtocolError);
    expectNoBodies(error);
  });

  it('slow drip past streamDeadlineMs → StreamDeadlineError, and the socket is closed', async () => {
    fake.enqueue({ fault: 'slow_drip', chunkDelayMs: 20 });
    let chunks = 0;
    const { error, ms } = await failure(() =>
      client({ streamDeadlineMs: 300, idleTimeoutMs: 200 }).stream(REQUEST, { signal: signal(), onContent: () => (chunks += 1) }),
    );
    expect(error).toBeInstanceOf(StreamDeadlineError);
    expect(chunks).toBeGreaterThan(3);
    expect(ms).toBeGreaterThanOrEqual(280);
    expect(ms).toBeLessThan(300 + SLACK_MS);
    await fake.waitForClientAbort();
  });

  it('an exception from onContent rejects the call with it and closes the stream', async () => {
    fake.enqueue({ fault: 'slow_drip', chunkDelayMs: 10 });
    const boom = new Error('consumer failed');
    const { error } = await failure(() =>
      client().stream(REQUEST, {
        signal: signal(),
        onContent: () => {
          throw boom;
        },
      }),
    );
    expect(error).toBe(boom);
    await fake.waitForClientAbort();
  });
});

describe('cancellation', () => {
  it('an abort mid-stream rejects with CancelledError and the server sees the client leave at once', async () => {
    fake.enqueue({ fault: 'slow_drip', chunkDelayMs: 20 });
    const controller = new AbortController();
    let abortedAt = 0;
    const call = client().stream(REQUEST, {
      signal: controller.signal,
      onContent: () => {
        if (abortedAt === 0) {
          abortedAt = Date.now();
          controller.abort();
        }
      },
    });
    await expect(call).rejects.toBeInstanceOf(CancelledError);
    const aborted = await fake.waitForClientAbort();
    expect(aborted.abortedAt).toBeDefined();
    expect((aborted.abortedAt ?? 0) - abortedAt).toBeLessThan(ABORT_SEEN_WITHIN_MS);
  });

  it('an abort before headers rejects with CancelledError and closes the connection', async () => {
    fake.enqueue({ fault: 'hang_before_headers' });
    const controller = new AbortController();
    const count = fake.requests.length;
    const call = client().complete(REQUEST, controller.signal);
    await fake.waitForRequests(count + 1);
    const abortedAt = Date.now();
    controller.abort();
    const { error, ms } = await failure(() => call);
    expect(error).toBeInstanceOf(CancelledError);
    expect(ms).toBeLessThan(SLACK_MS);
    const aborted = await fake.waitForClientAbort();
    expect((aborted.abortedAt ?? 0) - abortedAt).toBeLessThan(ABORT_SEEN_WITHIN_MS);
  });

  it('an already aborted signal rejects at once without a request', async () => {
    const count = fake.requests.length;
    await expect(client().listModels(AbortSignal.abort())).rejects.toBeInstanceOf(CancelledError);
    expect(fake.requests.length).toBe(count);
  });
});

describe('listModels and fetchStatus', () => {
  it('lists model ids', async () => {
    fake.models = ['small', 'large'];
    expect(await client().listModels(signal())).toEqual(['small', 'large']);
    fake.models = ['fake-model'];
  });

  it('maps a failing models endpoint to backend_unavailable and a slow one to backend_timeout', async () => {
    fake.modelsFault = 'http_500';
    const failing = await failure(() => client().listModels(signal()));
    expect((failing.error as BackendUnavailableError).status).toBe(500);

    fake.modelsFault = null;
    fake.modelsDelayMs = 1_000;
    const slow = await failure(() => client({ timeoutMs: 200 }).listModels(signal()));
    expect((slow.error as BackendUnavailableError).reason).toBe('backend_timeout');
    expect(slow.ms).toBeLessThan(200 + SLACK_MS);
  });

  it('reads the status endpoint', async () => {
    fake.status = { active_jobs: 2, total_requests: 41 };
    expect(await client().fetchStatus(signal())).toEqual({ activeJobs: 2, totalRequests: 41 });
  });

  it('returns null without a statusUrl', async () => {
    expect(await client({ statusUrl: null }).fetchStatus(signal())).toBeNull();
  });

  it('rejects a status of the wrong shape as BackendProtocolError, a missing one as BackendRequestError', async () => {
    fake.status = { active_jobs: -1, total_requests: 0 };
    await expect(client().fetchStatus(signal())).rejects.toBeInstanceOf(BackendProtocolError);
    fake.status = null;
    await expect(client().fetchStatus(signal())).rejects.toBeInstanceOf(BackendRequestError);
  });
});

describe('the fake backend', () => {
  it('counts concurrent chat completions', async () => {
    fake.resetStats();
    const shared = client();
    fake.setDefault({ content: ['a', 'b', 'c'], chunkDelayMs: 30 });
    await Promise.all(Array.from({ length: 4 }, () => shared.stream(REQUEST, { signal: signal(), onContent: () => {} })));
    expect(fake.maxConcurrent).toBe(4);
    expect(fake.concurrent).toBe(0);
  });
});
