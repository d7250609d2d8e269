import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createActor, fromCallback, fromPromise, toPromise } from 'xstate';
import type { ToolInput, ToolOutcome } from '../src/machines/job-machine.js';
import { reactMachine } from '../src/machines/react-machine.js';
import { startFakeBackend, type FakeBackend, type FakeReply, type FakeRequestBody } from './fakes/fake-openai-backend.js';
import { seedDocuments, startTestGateway, testBackend, TestClient, type TestGateway } from './helpers/gateway.js';
import { classifiedText } from './helpers/scripted-models.js';

/**
 * The ReAct loop through the running gateway: the reasoner has `tools: true`, the documents are in the
 * embedded database, the fake reasoner is scripted round by round (by how many tool results its request
 * already carries), and the real document search answers its `search` calls.
 */

let small: FakeBackend;
let large: FakeBackend;
let gateway: TestGateway;
let client: TestClient;
const logLines: Array<Record<string, unknown>> = [];
/** The reasoner's reply to its n-th request of a job (0-based). */
let rounds: FakeReply[] = [];

const search = (query: string, id?: string) => ({ ...(id ? { id } : {}), name: 'search', arguments: JSON.stringify({ query }) });
const toolMessages = (body: FakeRequestBody) => body.messages.filter((m) => m.role === 'tool').length;
/** Which round a request is: the assistant messages with tool calls it carries. */
const roundOf = (body: FakeRequestBody) => body.messages.filter((m) => m.role === 'assistant' && Array.isArray(m.tool_calls)).length;

const backend = (fake: FakeBackend, tools: boolean) => ({ ...testBackend(fake), tools });

beforeAll(async () => {
  small = await startFakeBackend();
  large = await startFakeBackend();
  small.setDefault((body) => (classifiedText(body) !== null ? { content: JSON.stringify({ action: 'route' }) } : { content: ['small'] }));
  large.setDefault((body) => rounds[roundOf(body)] ?? { content: ['no script for this round'] });
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-react-'));
  await seedDocuments(dataDir, [
    { id: 'budget.md', title: 'Budget 2026', body: 'The budget for 2026 is 12 000 euros, approved in March.' },
    { id: 'travel.md', title: 'Travel budget', body: 'The travel budget is 3 000 euros of the yearly budget.' },
    { id: 'garden.md', title: 'Garden', body: 'Tomatoes need sun.' },
  ]);
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  gateway = await startTestGateway({
    classifier: small,
    reasoner: large,
    dataDir,
    config: {
      // `fallback.reasonerToClassifier` stays on (the default): a loop that fails still ends the job.
      backends: { small: backend(small, false), large: backend(large, true) },
    },
    deps: { log: pino({ level: 'info' }, sink) },
  });
  client = await TestClient.connect(gateway.wsUrl);
}, 60_000);

afterAll(async () => {
  client?.close();
  await gateway?.close();
  await small?.close();
  await large?.close();
});

beforeEach(() => {
  logLines.length = 0;
});

describe('ReAct loop (reasoner with tools: true)', () => {
  it('searches twice, streams the final answer and lists each document once', async () => {
    rounds = [
      { toolCalls: [search('budget')] },
      // The same documents again, and two calls in one round: still one entry each in `sources`.
      { toolCalls: [search('budget euros', 'a'), search('travel budget', 'b')] },
      { content: ['The budget ', 'is 12 000 ', 'euros.'] },
    ];
    const before = large.chatRequests.length;
    const { jobId } = await client.chat('What is the budget for 2026?');
    const events = await client.finished(jobId);
    const names = events.map((e) => e.event);
    expect(names.at(-1)).toBe('done');
    expect(client.answer(jobId)).toBe('The budget is 12 000 euros.');
    // Streamed as `result` events (the WebSocket may merge chunks that arrive together).
    expect(events.filter((e) => e.event === 'result').length).toBeGreaterThan(0);
    const sources = events.filter((e) => e.event === 'sources');
    expect(sources).toHaveLength(1);
    expect(names.indexOf('sources')).toBeLessThan(names.indexOf('done'));
    expect(names.indexOf('sources')).toBeGreaterThan(names.lastIndexOf('result'));
    const ids = (sources[0]!.data.items as Array<{ id: string; title: string }>).map((s) => s.id);
    expect(ids).toContain('budget.md');
    expect(ids).toContain('travel.md');
    expect(new Set(ids).size).toBe(ids.length);

    const requests = large.chatRequests.slice(before).map((r) => r.body!);
    expect(requests).toHaveLength(3);
    expect(requests.map((b) => [b.stream === true, b.tool_choice])).toEqual([
      [false, 'auto'],
      [false, 'auto'],
      [true, 'none'],
    ]);
    for (const body of requests) expect(JSON.stringify(body.tools)).toContain('"search"');
    // Every call has its tool message, the search results among them.
    expect(requests.map(toolMessages)).toEqual([0, 1, 3]);
    const results = requests[2]!.messages.filter((m) => m.role === 'tool').map((m) => String(m.content));
    expect(results[0]).toContain('12 000 euros');
    expect(results.some((r) => r.includes('3 000 euros'))).toBe(true);

    // One log line per round with the job id, the tool names and timings; no text of the user or model.
    const logged = logLines.filter((line) => line.msg === 'react round');
    expect(logged.map((l) => [l.jobId, l.round, l.final, l.tools])).toEqual([
      [jobId, 1, false, ['search']],
      [jobId, 2, false, ['search', 'search']],
      [jobId, 3, true, []],
    ]);
    for (const line of logged) {
      expect(typeof line.modelMs).toBe('number');
      expect(typeof line.totalMs).toBe('number');
    }
    const all = JSON.stringify(logLines);
    for (const text of ['budget for 2026', '12 000', 'budget euros', 'travel budget']) expect(all).not.toContain(text);
  });

  it('searches once and answers in the next tool round: no final round', async () => {
    rounds = [{ toolCalls: [search('budget')] }, { content: 'It is 12 000 euros (Budget 2026).' }];
    const before = large.chatRequests.length;
    const { jobId } = await client.chat('How big is the budget?');
    const events = await client.finished(jobId);
    expect(events.at(-1)?.event).toBe('done');
    expect(client.answer(jobId)).toBe('It is 12 000 euros (Budget 2026).');
    const items = events.find((e) => e.event === 'sources')?.data.items as Array<{ id: string }>;
    expect(items.map((s) => s.id)).toContain('budget.md');
    expect(new Set(items.map((s) => s.id)).size).toBe(items.length);
    expect(large.chatRequests.length - before).toBe(2);
  });

  it('a backend that keeps calling tools has the final round\'s calls ignored, and the loop ends there', async () => {
    rounds = [
      { toolCalls: [search('budget')] },
      { toolCalls: [search('budget')] },
      { content: ['Twelve thousand', ' euros.'], toolCalls: [search('more budget'), { name: 'calendar', arguments: '{}' }] },
      { toolCalls: [search('never asked')] },
    ];
    const before = large.chatRequests.length;
    const { jobId } = await client.chat('Budget?');
    const events = await client.finished(jobId);
    expect(events.at(-1)?.event).toBe('done');
    expect(client.answer(jobId)).toBe('Twelve thousand euros.');
    expect(large.chatRequests.length - before).toBe(3);
    expect(events.filter((e) => e.event === 'sources')).toHaveLength(1);
    const final = logLines.find((line) => line.msg === 'react round' && line.final === true);
    expect(final?.ignoredCalls).toBe(2);
  });

  it('a final round with nothing but tool calls ends the job with empty_answer (no fourth round)', async () => {
    rounds = [{ toolCalls: [search('budget')] }, { toolCalls: [search('budget')] }, { toolCalls: [search('budget')] }, { content: ['never'] }];
    const before = large.chatRequests.length;
    const { jobId } = await client.chat('Budget please');
    const events = await client.finished(jobId);
    expect(events.at(-1)).toMatchObject({ event: 'error', data: { reason: 'empty_answer' } });
    expect(large.chatRequests.length - before).toBe(3);
  });

  it('a backend error mid-loop ends the job with a terminal error event', async () => {
    rounds = [{ toolCalls: [search('budget')] }, { fault: 'http_500' }];
    const before = large.chatRequests.length;
    const { jobId } = await client.chat('What does the budget say?');
    const events = await client.finished(jobId);
    expect(events.at(-1)).toMatchObject({ event: 'error', data: { reason: 'backend_unavailable' } });
    expect(events.some((e) => e.event === 'sources' || e.event === 'done')).toBe(false);
    expect(large.chatRequests.length - before).toBe(2);
  });

  it('a stream that drops in the final round ends the job with an error after the chunks it sent', async () => {
    rounds = [{ toolCalls: [search('budget')] }, { toolCalls: [search('travel')] }, { fault: 'drop_mid_stream', content: ['The budget'] }];
    const { jobId } = await client.chat('Tell me the budget');
    const events = await client.finished(jobId);
    expect(events.at(-1)).toMatchObject({ event: 'error', data: { reason: 'backend_disconnected' } });
    expect(client.answer(jobId)).toBe('The budget');
  });
});

describe('ReAct machine on its own', () => {
  it('a search that times out ends the loop with the tool\'s reason and sentence', async () => {
    const machine = reactMachine.provide({
      actors: {
        infer: fromCallback(({ sendBack }) => {
          sendBack({
            type: 'infer.done',
            requestId: 'r',
            result: { content: '', toolCalls: [{ id: 'c1', type: 'function', function: { name: 'search', arguments: '{"query":"budget"}' } }], finishReason: 'tool_calls' },
            timing: { queuedMs: 0, firstByteMs: 1, totalMs: 1 },
          });
        }),
        runTool: fromPromise<ToolOutcome, ToolInput>(async () => ({ ok: false, reason: 'tool_timeout', message: 'The search took too long.' })),
      },
      actions: { forwardToParent: () => {}, forwardAnswer: () => {}, reportRound: () => {} },
    });
    const actor = createActor(machine, { input: { jobId: 'j', backend: 'large', messages: [{ role: 'user', content: 'x' }], text: 'x' } }).start();
    await expect(toPromise(actor)).resolves.toEqual({ ok: false, reason: 'tool_timeout', code: 'tool_timeout', message: 'The search took too long.' });
  });
});
