import { once } from 'node:events';
import { rmSync } from 'node:fs';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { JobEvent } from '../src/jobs/job-event.js';
import { ANONYMOUS } from '../src/transport/owner-id.js';
import { startFakeBackend, type FakeBackend, type RecordedRequest } from './fakes/fake-openai-backend.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { scriptModels } from './helpers/scripted-models.js';

/** The server sees an abort this soon: far below every timeout that could close the connection too, and
 * wide enough for a loaded 2-core machine (the fake shares this process's event loop). */
const ABORT_SEEN_WITHIN_MS = 500;

const TOKEN = 'openai-chat-test-token';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let small: FakeBackend;
let large: FakeBackend;
let gateway: TestGateway;
let authed: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  [small, large] = await Promise.all([startFakeBackend(), startFakeBackend()]);
  scriptModels(small, large, { classify: () => JSON.stringify({ action: 'route' }) });
  gateway = await startTestGateway({ classifier: small, reasoner: large });
  // One job in flight per owner on this one, for the 429.
  authed = await startTestGateway({ classifier: small, reasoner: large, config: { auth: { tokens: [TOKEN] }, limits: { pendingJobsPerOwner: 1 } } });
  client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await Promise.all([gateway?.close(), authed?.close()]);
  await Promise.all([small?.close(), large?.close()]);
});

const history = [
  { role: 'user' as const, content: 'earlier question' },
  { role: 'assistant' as const, content: 'earlier answer' },
  { role: 'user' as const, content: 'the question' },
];

/** The chat requests `fake` received since `from` (an index into its `requests`). */
function chatRequestsSince(fake: FakeBackend, from: number): RecordedRequest[] {
  return fake.requests.slice(from).filter((record) => record.body !== null);
}

/** POSTs a completion and returns the status, headers and raw body. */
async function post(body: unknown, url = gateway.url, headers: Record<string, string> = {}) {
  const response = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

describe('POST /v1/chat/completions (the official openai client)', () => {
  it('a mode, not streamed: the backend gets the history, the answer comes with the job id and the requested model', async () => {
    const from = small.requests.length;
    const { data, response } = await client.chat.completions.create({ model: 'daily', messages: history }).withResponse();
    expect(data.choices[0]!.message.content).toBe('small answer');
    expect(data.model).toBe('daily');
    expect(data.usage).toBeUndefined();
    expect(response.headers.get('x-switchboard-job-id')).toMatch(UUID);
    const contents = chatRequestsSince(small, from).at(-1)!.body!.messages.map((message) => message.content);
    expect(contents.slice(-3)).toEqual(['earlier question', 'earlier answer', 'the question']);
  });

  it('a mode, streamed: every chunk names the mode, none has usage, the text is the answer', async () => {
    const stream = await client.chat.completions.create({ model: 'deep', messages: history, stream: true });
    let text = '';
    for await (const chunk of stream) {
      expect(chunk.model).toBe('deep');
      expect(chunk.object).toBe('chat.completion.chunk');
      expect(chunk.usage ?? undefined).toBeUndefined();
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(text).toBe('large answer');
  });

  it('auto runs the job pipeline, streamed and not', async () => {
    const answer = await client.chat.completions.create({ model: 'auto', messages: history });
    expect(answer.choices[0]!.message.content).toBe('large answer');
    expect(answer.model).toBe('auto');
    let text = '';
    for await (const chunk of await client.chat.completions.create({ model: 'auto', messages: history, stream: true })) {
      expect(chunk.model).toBe('auto');
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(text).toBe('large answer');
  });

  it('the raw stream: OpenAI chunks, data: [DONE] last, no backend name, model file or usage', async () => {
    const { status, headers, text } = await post({ model: 'deep', messages: history, stream: true });
    expect(status).toBe(200);
    expect(headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(headers.get('x-switchboard-job-id')).toMatch(UUID);
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    for (const hidden of ['fake-model', '"large"', '"small"', 'usage', large.baseUrl]) expect(text).not.toContain(hidden);
  });

  it('400 unknown_model, 422 for role system, 413 for a message over the cap', async () => {
    await expect(client.chat.completions.create({ model: 'fake-model', messages: history })).rejects.toMatchObject({ status: 400, code: 'unknown_model' });
    await expect(client.chat.completions.create({ model: 'auto', messages: [{ role: 'system', content: 'x' }, ...history] })).rejects.toMatchObject({
      status: 422,
      code: 'system_role_refused',
    });
    await expect(client.chat.completions.create({ model: 'daily', messages: [{ role: 'user', content: 'x'.repeat(8_001) }] })).rejects.toMatchObject({
      status: 413,
      code: 'message_too_long',
    });
  });

  it('a failure after streaming started ends the stream with an error chunk and no [DONE]', async () => {
    large.enqueue({ content: ['first', 'second'], fault: 'drop_mid_stream' });
    const { status, text } = await post({ model: 'deep', messages: history, stream: true });
    expect(status).toBe(200);
    expect(text).toContain('first');
    expect(text).not.toContain('[DONE]');
    const last = text.trim().split('\n\n').at(-1)!;
    expect(JSON.parse(last.slice('data: '.length))).toMatchObject({ error: { error_reason: expect.any(String) } });
  });

  it('is journaled after delivery: the job, once written, replays exactly the events its answer came from', async () => {
    const seen: string[] = [];
    const stream = await client.chat.completions.create({ model: 'deep', messages: history, stream: true }).withResponse();
    for await (const chunk of stream.data) seen.push(chunk.choices[0]?.delta.content ?? '');
    const jobId = stream.response.headers.get('x-switchboard-job-id')!;
    // Written off the hot path: wait until the journal has the whole job, then replay it as its owner.
    const replayed = await vi.waitFor(
      async () => {
        const events: JobEvent[] = [];
        await gateway.runtime.subscribe(jobId, ANONYMOUS, 0, (event) => events.push(event));
        expect(events.at(-1)?.event).toBe('done');
        return events;
      },
      { timeout: 5_000, interval: 20 },
    );
    expect(replayed.map((event) => event.seq)).toEqual(replayed.map((_, index) => index + 1));
    const answer = replayed.filter((event) => event.event === 'result').map((event) => String(event.data['content'])).join('');
    expect(answer).toBe(seen.join(''));
    expect(answer).toBe('large answer');
    // Another caller cannot see it.
    expect(await gateway.runtime.subscribe(jobId, 'someone-else', 0, () => undefined)).toBeNull();

    // And it is in the store, not only in memory: a gateway started again on the same folder replays it.
    const own = await startTestGateway({ classifier: small, reasoner: large });
    let again: TestGateway | undefined;
    try {
      const ownClient = new OpenAI({ baseURL: `${own.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const done = await ownClient.chat.completions.create({ model: 'deep', messages: history }).withResponse();
      const ownJobId = done.response.headers.get('x-switchboard-job-id')!;
      await own.close({ keepData: true });
      again = await startTestGateway({ classifier: small, reasoner: large, dataDir: own.dataDir });
      const stored: JobEvent[] = [];
      await again.runtime.subscribe(ownJobId, ANONYMOUS, 0, (event) => stored.push(event));
      expect(stored.map((event) => event.event)).toEqual(['ack', 'result', 'done']);
      expect(stored.find((event) => event.event === 'result')?.data['content']).toBe(done.data.choices[0]!.message.content);
    } finally {
      await again?.close();
      rmSync(own.dataDir, { recursive: true, force: true });
    }
    // Two more gateways on the embedded database: seconds each on a busy machine.
  }, 60_000);

  it('a client that disconnects cancels the job: the backend sees its request closed at once', async () => {
    large.enqueue({ content: ['first', 'second'], fault: 'stall_mid_stream' });
    const controller = new AbortController();
    const stream = await client.chat.completions.create({ model: 'deep', messages: history, stream: true }, { signal: controller.signal });
    const aborted = once(large.events, 'clientAbort');
    for await (const chunk of stream) {
      if ((chunk.choices[0]?.delta.content ?? '') !== '') break;
    }
    const at = Date.now();
    controller.abort();
    const [record] = (await aborted) as [RecordedRequest];
    expect(record.clientAborted).toBe(true);
    expect(record.abortedAt! - at).toBeLessThanOrEqual(ABORT_SEEN_WITHIN_MS);
  });

  it('429 rate_limited while the owner already has limits.pendingJobsPerOwner jobs in flight; the next one after it ends works', async () => {
    small.enqueue({ content: ['first', 'second'], fault: 'stall_mid_stream' });
    const ok = new OpenAI({ baseURL: `${authed.url}/v1`, apiKey: TOKEN, maxRetries: 0 });
    const controller = new AbortController();
    const stream = await ok.chat.completions.create({ model: 'daily', messages: history, stream: true }, { signal: controller.signal });
    const { status, text } = await post({ model: 'daily', messages: history }, authed.url, { authorization: `Bearer ${TOKEN}` });
    expect(status).toBe(429);
    expect(JSON.parse(text)).toMatchObject({ error: { type: 'invalid_request_error', code: 'rate_limited' } });
    // Hanging up cancels the first job (the SDK ends the iteration quietly on its own abort).
    controller.abort();
    await (async () => {
      for await (const _ of stream);
    })().catch(() => undefined);
    // The cancelled job leaves the owner's count: the next request is served.
    await vi.waitFor(async () => expect((await post({ model: 'daily', messages: history }, authed.url, { authorization: `Bearer ${TOKEN}` })).status).toBe(200), {
      timeout: 5_000,
      interval: 20,
    });
  });

  it('503 backend_unavailable with error_reason when the model server cannot be reached, and at once while it is down', async () => {
    large.enqueue({ fault: 'refuse' });
    const { status, text } = await post({ model: 'deep', messages: history });
    expect(status).toBe(503);
    expect(JSON.parse(text)).toMatchObject({ error: { type: 'backend_unavailable', error_reason: 'backend_unavailable' } });
    // Now known to be down: refused before any job (run last: the backend stays down until its next probe).
    const again = await post({ model: 'deep', messages: history, stream: true });
    expect(again.status).toBe(503);
    expect(JSON.parse(again.text)).toMatchObject({ error: { type: 'backend_unavailable' } });
  });

  it('with auth.tokens, needs the bearer token (401 with a one-line JSON body)', async () => {
    const { status, text } = await post({ model: 'daily', messages: history }, authed.url);
    expect(status).toBe(401);
    expect(text).not.toContain('\n');
    const ok = new OpenAI({ baseURL: `${authed.url}/v1`, apiKey: TOKEN, maxRetries: 0 });
    expect((await ok.chat.completions.create({ model: 'daily', messages: history })).choices[0]!.message.content).toBe('small answer');
  });

});
