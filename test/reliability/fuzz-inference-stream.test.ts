import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOpenAIClient, type OpenAIClient } from '../../src/actors/inference/openai-client.js';
import type { ChatResult } from '../../src/actors/inference/types.js';
import { InternalError, SwitchboardError } from '../../src/errors.js';
import { awkwardValue, fuzzParameters, runsOf, type FuzzBudget } from './fuzz-settings.js';

/**
 * Fuzzing what a model server sends back, through the real inference client and its SSE parser
 * (issue 14, item 2): an arbitrary byte stream (or body), written in arbitrary pieces over a real
 * socket, ends the call with a result or one of the coded errors of src/errors.ts — never another
 * exception or a hang — and the same bytes written in other pieces end it the same way.
 */

/** What the server answers to the next request: the body in these pieces, with this content type. */
let script: { pieces: Uint8Array[]; contentType: string; status: number } = { pieces: [], contentType: 'text/event-stream', status: 200 };
let server: Server;
let client: OpenAIClient;

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const { pieces, contentType, status } = script;
      res.writeHead(status, { 'content-type': contentType });
      // Each piece in its own write, flushed before the next, so the client reads them apart.
      void (async () => {
        for (const piece of pieces) {
          if (!res.write(piece)) await once(res, 'drain');
          await new Promise((resolve) => setImmediate(resolve));
        }
        res.end();
      })();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  // Short limits: a body that would otherwise wait on a timeout ends the run in a bounded time.
  client = createOpenAIClient({ baseUrl: `http://127.0.0.1:${port}/v1`, model: 'fuzz', timeoutMs: 3_000, idleTimeoutMs: 2_000, streamDeadlineMs: 5_000, maxAnswerChars: 2_000 });
});

afterAll(async () => {
  await client?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

/** A call's outcome, comparable between runs: the result, or the error's code and reason. */
type Outcome = { result: ChatResult; contents: string[] } | { code: string; reason: string };

async function outcome(call: (onContent: (text: string) => void) => Promise<ChatResult>): Promise<Outcome> {
  const contents: string[] = [];
  try {
    const result = await call((text) => contents.push(text));
    return { result, contents };
  } catch (error) {
    // Every failure of the client is one of the coded errors, never a bare TypeError or SyntaxError.
    expect(error).toBeInstanceOf(SwitchboardError);
    expect(error).not.toBeInstanceOf(InternalError);
    const { code, reason, retryable } = error as SwitchboardError & { retryable: boolean };
    expect(typeof code).toBe('string');
    expect(reason).toMatch(/^[a-z0-9_]{1,64}$/);
    expect(typeof retryable).toBe('boolean');
    return { code, reason };
  }
}

function expectValidResult(outcome: Outcome, streamed: boolean): void {
  if (!('result' in outcome)) return;
  const { result, contents } = outcome;
  expect(typeof result.content).toBe('string');
  expect(result.content.length).toBeLessThanOrEqual(2_000);
  expect(Array.isArray(result.toolCalls)).toBe(true);
  expect(result.finishReason === null || typeof result.finishReason === 'string').toBe(true);
  // What was streamed is the answer.
  if (streamed) expect(contents.join('')).toBe(result.content);
}

function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  return [...at, bytes.length].map((end, i, all) => bytes.subarray(i === 0 ? 0 : all[i - 1], end)).filter((piece) => piece.length > 0);
}

const REQUEST = { messages: [{ role: 'user' as const, content: 'hi' }] };

/** A chunk as OpenAI-compatible servers write it, with any field possibly wrong. */
const chunkJson = fc
  .record(
    {
      content: fc.oneof({ weight: 6, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) }, { weight: 1, arbitrary: awkwardValue }),
      role: fc.oneof({ weight: 6, arbitrary: fc.constant('assistant') }, { weight: 1, arbitrary: awkwardValue }),
      toolIndex: fc.oneof(fc.constantFrom(0, 1, 127, 128, -1, 1e9, 0.5), awkwardValue),
      toolName: fc.oneof(fc.constant('search'), awkwardValue),
      toolArgs: fc.oneof(fc.constant('{"query":'), awkwardValue),
      finish: fc.oneof(fc.constantFrom(null, 'stop', 'length', 'tool_calls'), awkwardValue),
      // Mostly well-formed content, so whole answers get through too.
      shape: fc.constantFrom('content', 'content', 'content', 'content', 'content', 'content', 'content', 'content', 'tool', 'finish', 'no-choices', 'choices-not-array', 'error'),
    },
    { requiredKeys: ['shape'] },
  )
  .map(({ content, role, toolIndex, toolName, toolArgs, finish, shape }) => {
    switch (shape) {
      case 'content':
        return { choices: [{ index: 0, delta: { role, content }, finish_reason: null }] };
      case 'tool':
        return { choices: [{ index: 0, delta: { tool_calls: [{ index: toolIndex, id: 'c', type: 'function', function: { name: toolName, arguments: toolArgs } }] } }] };
      case 'finish':
        return { choices: [{ index: 0, delta: {}, finish_reason: finish }] };
      case 'no-choices':
        return { id: 'x', usage: { total_tokens: 3 } };
      case 'choices-not-array':
        return { choices: content };
      default:
        return { error: { message: content } };
    }
  });

const event = fc.oneof(
  { weight: 16, arbitrary: chunkJson.map((json) => `data: ${JSON.stringify(json)}\n\n`) },
  { weight: 2, arbitrary: fc.constantFrom('data: [DONE]\n\n', ': keep-alive\n\n', 'data: {"choices":[\n\n', 'data:\n\n', 'event: error\ndata: {}\n\n', '\r\n', 'data: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\n') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
);

/** A stream: events (some broken), arbitrary bytes spliced in now and then. */
const streamBytes = fc
  .array(fc.oneof({ weight: 30, arbitrary: event.map((text) => new Uint8Array(Buffer.from(text))) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 6 }) }), { maxLength: 12 })
  .map((parts) => new Uint8Array(Buffer.concat(parts)));

/** A non-streaming body: a completion with any field wrong, arbitrary JSON, or not JSON. */
const completionBytes = fc
  .oneof(
    fc.record({ content: fc.oneof(fc.string({ maxLength: 30 }), awkwardValue), message: awkwardValue, finish: awkwardValue, wrap: fc.boolean() }).map(({ content, message, finish, wrap }) =>
      JSON.stringify(wrap ? { choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: finish }] } : { choices: [{ message }] }),
    ),
    fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify(value) ?? ''),
    fc.string({ unit: 'binary', maxLength: 60 }),
  )
  .map((text) => new Uint8Array(Buffer.from(text)));

const STREAMS: FuzzBudget = { seed: 1441, numRuns: 300, runMs: 15_000, totalMs: 60_000 };
const BODIES: FuzzBudget = { seed: 1442, numRuns: 200, runMs: 10_000, totalMs: 30_000 };

describe('fuzz: model server answers through the inference client and its SSE parser', () => {
  it(`an arbitrary event stream in arbitrary pieces ends with a result or a coded error, the same for two splits (${runsOf(STREAMS)})`, async () => {
    await fc.assert(
      fc.asyncProperty(streamBytes, fc.array(fc.nat(), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 8 }), async (bytes, cutsA, cutsB) => {
        const outcomes: Outcome[] = [];
        for (const cuts of [cutsA, cutsB]) {
          script = { pieces: split(bytes, cuts), contentType: 'text/event-stream', status: 200 };
          outcomes.push(await outcome((onContent) => client.stream(REQUEST, { signal: new AbortController().signal, onContent })));
        }
        for (const each of outcomes) expectValidResult(each, true);
        expect(outcomes[1]).toEqual(outcomes[0]);
      }),
      fuzzParameters(STREAMS),
    );
  });

  it(`an arbitrary non-streaming body (status 200 or an error status) ends with a result or a coded error (${runsOf(BODIES)})`, async () => {
    await fc.assert(
      fc.asyncProperty(completionBytes, fc.constantFrom(200, 200, 200, 400, 404, 429, 500, 503), fc.constantFrom('application/json', 'text/plain', 'text/event-stream'), async (bytes, status, contentType) => {
        script = { pieces: [bytes], contentType, status };
        expectValidResult(await outcome(() => client.complete(REQUEST, new AbortController().signal)), false);
      }),
      fuzzParameters(BODIES),
    );
  });
});
