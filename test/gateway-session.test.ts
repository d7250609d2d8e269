import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seedDocuments, startTestGateway, TestClient, type EventFrame, type TestGateway } from './helpers/gateway.js';
import { scriptModels } from './helpers/scripted-models.js';

/**
 * One WebSocket session drives every branch of the job pipeline against the real gateway (runtime,
 * PGlite store, backend actors) and two fake model servers, and checks the events of the contract.
 */

let small: FakeBackend;
let large: FakeBackend;
let gateway: TestGateway;
let client: TestClient;

const json = (value: unknown) => JSON.stringify(value);

beforeAll(async () => {
  small = await startFakeBackend();
  large = await startFakeBackend();
  scriptModels(small, large, {
    classify: (text) => {
      if (text === 'hello') return json({ action: 'direct', response: 'Hello from the small model.' });
      if (text === 'chat with me') return json({ action: 'direct' });
      if (text === 'which one?') return json({ action: 'clarify', response: 'Which one do you mean?' });
      if (text === 'slow thought') return { content: json({ action: 'direct', response: 'late' }), headersDelayMs: 3_000 };
      if (text === 'not json at all') return '```\nJust some plain words\n```';
      return json({ action: 'route' });
    },
    smallStream: (text) => ({ content: text.includes('fallback') ? ['small ', 'takes ', 'over'] : ['small ', 'streams'] }),
    phrase: () => ({ content: 'Here is what I found in your documents.' }),
    reason: (text) => {
      if (text.includes('fallback')) return { fault: 'http_500' };
      if (text.includes('break')) return { fault: 'drop_mid_stream', content: ['partial '] };
      if (text.includes('long')) return { content: Array.from({ length: 100 }, () => 'word '), chunkDelayMs: 30 };
      return { content: ['The ', 'large ', 'model ', 'answers.'] };
    },
  });
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-session-'));
  await seedDocuments(dataDir, [{ id: 'plans/budget.md', title: 'Budget 2026', body: 'The budget for 2026 is 12 000 euros for hardware.' }]);
  gateway = await startTestGateway({ classifier: small, reasoner: large, dataDir });
  client = await TestClient.connect(gateway.wsUrl);
}, 60_000);

afterAll(async () => {
  client?.close();
  await gateway?.close();
  await small?.close();
  await large?.close();
});

/** Checks the contract on a job's events: seq 1..n, one terminal event, last. */
function checkContract(events: EventFrame[]): void {
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  const terminals = events.filter((e) => ['done', 'error', 'cancelled'].includes(e.event));
  expect(terminals).toHaveLength(1);
  expect(events.at(-1)).toBe(terminals[0]);
  for (const e of events) expect(Number.isNaN(Date.parse(e.at))).toBe(false);
}

const names = (events: EventFrame[]) => events.map((e) => e.event);

describe('one WebSocket session through every branch', () => {
  it('direct with a ready response', async () => {
    const { jobId } = await client.chat('hello');
    const events = await client.finished(jobId);
    checkContract(events);
    expect(names(events)[0]).toBe('ack');
    expect(client.answer(jobId)).toBe('Hello from the small model.');
    expect(events.at(-1)?.event).toBe('done');
  });

  it('direct without a response streams from the classifier', async () => {
    const { jobId } = await client.chat('chat with me');
    const events = await client.finished(jobId);
    checkContract(events);
    expect(client.answer(jobId)).toBe('small streams');
    expect(events.at(-1)?.event).toBe('done');
  });

  it('unparsable classifier output becomes a direct answer with the cleaned text', async () => {
    const { jobId } = await client.chat('not json at all');
    const events = await client.finished(jobId);
    checkContract(events);
    expect(client.answer(jobId)).toBe('Just some plain words');
  });

  it('clarify asks back', async () => {
    const { jobId } = await client.chat('which one?');
    const events = await client.finished(jobId);
    checkContract(events);
    expect(client.answer(jobId)).toBe('Which one do you mean?');
  });

  it('system status is answered from fresh measurements, without the classifier', async () => {
    const before = small.chatRequests.length;
    const { jobId } = await client.chat('system status');
    const events = await client.finished(jobId);
    checkContract(events);
    expect(small.chatRequests.length).toBe(before);
    expect(client.answer(jobId)).toMatch(/small/);
    expect(client.answer(jobId)).toMatch(/large/);
  });

  it('document search finds an ingested document, sends sources and a phrased answer', async () => {
    const { jobId } = await client.chat('search documents for budget');
    const events = await client.finished(jobId);
    checkContract(events);
    expect(events.at(-1)?.event).toBe('done');
    const sources = events.find((e) => e.event === 'sources');
    expect(sources?.data.items).toEqual([{ id: 'plans/budget.md', title: 'Budget 2026' }]);
    expect(client.answer(jobId)).toBe('Here is what I found in your documents.');
    const phrasing = small.chatRequests.at(-1)?.body?.messages.at(-1)?.content;
    expect(phrasing).toContain('12 000 euros');
  });

  it('route streams from the reasoner after a rewrite event', async () => {
    const { jobId } = await client.chat('explain the universe');
    const events = await client.finished(jobId);
    checkContract(events);
    expect(names(events)).toContain('rewrite');
    expect(client.answer(jobId)).toBe('The large model answers.');
    expect(events.filter((e) => e.event === 'result').length).toBeGreaterThanOrEqual(1);
  });

  it('route falls back to the classifier when the reasoner fails before the first byte', async () => {
    const { jobId } = await client.chat('explain with fallback');
    const events = await client.finished(jobId);
    checkContract(events);
    expect(client.answer(jobId)).toBe('small takes over');
    expect(events.at(-1)?.event).toBe('done');
  });

  it('route failing after the first byte ends in error, never a spliced answer', async () => {
    const { jobId } = await client.chat('explain and break');
    const events = await client.finished(jobId);
    checkContract(events);
    const last = events.at(-1);
    expect(last?.event).toBe('error');
    expect(last?.data.reason).toBe('backend_disconnected');
    expect(String(last?.data.reason)).toMatch(/^[a-z0-9_]{1,64}$/);
    expect(client.answer(jobId)).toBe('partial ');
  });

  it('cancel during classify ends with cancelled', async () => {
    const { jobId } = await client.chat('slow thought');
    await client.waitFor((f) => f.type === 'event' && f.jobId === jobId && f.event === 'processing');
    client.send({ type: 'cancel', jobId });
    const events = await client.finished(jobId);
    checkContract(events);
    expect(events.at(-1)?.event).toBe('cancelled');
  });

  it('cancel during streaming ends with cancelled and aborts the reasoner request', async () => {
    const { jobId } = await client.chat('explain something long');
    await client.waitFor((f) => f.type === 'event' && f.jobId === jobId && f.event === 'result');
    client.send({ type: 'cancel', jobId });
    const events = await client.finished(jobId);
    checkContract(events);
    expect(events.at(-1)?.event).toBe('cancelled');
    const aborted = await large.waitForClientAbort(2_000);
    expect(aborted.clientAborted).toBe(true);
  });

  it('a mode streams straight from its backend, and an unknown mode is a bad_request', async () => {
    const { jobId } = await client.chat('hi deep', { mode: 'deep' });
    const events = await client.finished(jobId);
    checkContract(events);
    expect(client.answer(jobId)).toBe('The large model answers.');
    const from = client.frames.length;
    client.send({ type: 'chat', text: 'x', mode: 'nope' });
    const error = await client.waitFor((f) => f.type === 'error', 5_000, from);
    expect(error.code).toBe('bad_request');
  });

  it('answers an English message with English notices and prompts, and a Korean one with Korean ones', async () => {
    const noticesOf = async (text: string) => {
      const { jobId } = await client.chat(text);
      const events = await client.finished(jobId);
      const classifier = small.chatRequests.find((r) => String(r.body?.messages.at(-1)?.content ?? '').endsWith(`[message]\n${text}`));
      return {
        notices: events.filter((e) => e.event === 'processing').map((e) => e.data['message']),
        prompt: String(classifier?.body?.messages[0]?.content ?? ''),
      };
    };
    const english = await noticesOf('tell me about the universe');
    expect(english.notices).toContain('Looking at your message…');
    expect(english.prompt).toMatch(/^You are 이드\./);
    const korean = await noticesOf('우주에 대해 알려줘');
    expect(korean.notices).toContain('메시지를 살펴보고 있어요…');
    expect(korean.prompt).toMatch(/^당신은 이드입니다\./);
    // This gateway configures no calendar and no mailbox: the classifier is offered document search only.
    for (const prompt of [english.prompt, korean.prompt]) {
      expect(prompt).toContain('- document.search(query)');
      expect(prompt).not.toMatch(/\b(calendar|email)\.[a-z_]+\(|^@/m);
    }
  });

  it("names of Object.prototype's members are not modes: each is a bad_request naming the mode, and nothing runs", async () => {
    const requests = small.chatRequests.length + large.chatRequests.length;
    for (const mode of ['toString', '__proto__', 'constructor', 'hasOwnProperty']) {
      const from = client.frames.length;
      client.send({ type: 'chat', text: 'x', mode, clientMsgId: `proto-${mode}` });
      const error = await client.waitFor((f) => f.type === 'error' && f.clientMsgId === `proto-${mode}`, 5_000, from);
      expect(error).toMatchObject({ code: 'bad_request' });
      expect(String(error.message)).toContain(mode);
    }
    expect(client.frames.filter((f) => f.type === 'accepted' && String(f.clientMsgId).startsWith('proto-'))).toEqual([]);
    expect(small.chatRequests.length + large.chatRequests.length).toBe(requests);
  });

  it('keeps the conversation: the second message of a conversation sees the first in its history', async () => {
    const first = await client.chat('hello');
    await client.finished(first.jobId);
    const second = await client.chat('explain the universe again', { conversationId: first.conversationId });
    await client.finished(second.jobId);
    const request = large.chatRequests.at(-1);
    const contents = request?.body?.messages.map((m) => m.content) ?? [];
    expect(contents).toContain('hello');
    expect(contents).toContain('Hello from the small model.');
  });
});
