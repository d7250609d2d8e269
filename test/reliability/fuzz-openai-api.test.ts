import fc from 'fast-check';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBackend, type FakeBackend } from '../fakes/fake-openai-backend.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { chatBody, MARKER, runnableBody } from './fuzz-openai-bodies.js';
import { fuzzParameters, runsOf, type FuzzBudget } from './fuzz-settings.js';

/**
 * Fuzzing `POST /v1/chat/completions` against a real gateway (issue 14, item 2; DESIGN §5): arbitrary
 * JSON, near-valid bodies, bodies that run (any text), text that is not JSON, bytes that are not UTF-8
 * and bodies over the size cap get 200 (a whole `chat.completion`, or SSE chunks ending with
 * `data: [DONE]`) or a 4xx with the documented `{"error":{"type","code","message"}}` — never a 5xx or a
 * hang. After each run a good request still gets its answer, and nothing was logged as an error.
 */

/** Small caps, so the fuzzed sizes cross them. */
const LIMITS = { messageChars: 200, turns: 4, totalChars: 500 };
/** Deadline for one answer; the fakes answer at once, so only a hang gets near it. */
const ANSWER_MS = 5_000;

let small: FakeBackend;
let large: FakeBackend;
let gateway: TestGateway;
const errorLines: string[] = [];

beforeAll(async () => {
  small = await startFakeBackend();
  large = await startFakeBackend();
  // Errors the runtime logs are failures too: an input it could not handle without one is a bug.
  const log = pino({ level: 'error' }, { write: (line: string) => void errorLines.push(line) });
  gateway = await startTestGateway({ classifier: small, reasoner: large, config: { limits: LIMITS }, deps: { log } });
});

afterAll(async () => {
  await gateway?.close();
  await small?.close();
  await large?.close();
});

async function complete(body: Uint8Array | string): Promise<Response> {
  return fetch(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(ANSWER_MS),
  });
}

/** The model a body asked for, when it is a string (echoed in every answer). */
function requestedModel(body: Uint8Array | string): unknown {
  try {
    return (JSON.parse(typeof body === 'string' ? body : Buffer.from(body).toString('utf8')) as { model?: unknown }).model;
  } catch {
    return undefined;
  }
}

/** One run: the answer is a valid completion or a documented 4xx; then a good request still works. */
async function postAndCheck(body: Uint8Array | string): Promise<void> {
  errorLines.length = 0;
  const response = await complete(body);
  const text = await response.text();
  if (response.status === 200) {
    expect(response.headers.get('x-switchboard-job-id')).toMatch(/\S/);
    const model = requestedModel(body);
    if (response.headers.get('content-type')?.startsWith('text/event-stream')) {
      expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
      const chunks = text
        .split('\n\n')
        .filter((event) => event.startsWith('data: ') && event !== 'data: [DONE]')
        .map((event) => JSON.parse(event.slice('data: '.length)) as { object: string; model: string });
      for (const chunk of chunks) {
        expect(chunk.object).toBe('chat.completion.chunk');
        expect(chunk.model).toBe(model);
      }
    } else {
      const completion = JSON.parse(text) as { object: string; model: string; choices: Array<{ message: { content: string } }> };
      expect(completion.object).toBe('chat.completion');
      expect(completion.model).toBe(model);
      expect(typeof completion.choices[0]?.message.content).toBe('string');
    }
  } else {
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    const error = (JSON.parse(text) as { error: { type: unknown; code: unknown; message: unknown } }).error;
    expect(Object.keys(error).sort()).toEqual(['code', 'message', 'type']);
    expect(typeof error.type).toBe('string');
    expect(error.code).toMatch(/^[a-z0-9_]{1,64}$/);
    expect(typeof error.message).toBe('string');
    expect(String(error.message)).not.toContain(MARKER);
  }
  // Still serving.
  const good = await complete(JSON.stringify({ model: 'daily', messages: [{ role: 'user', content: 'still there?' }] }));
  expect(good.status).toBe(200);
  expect(((await good.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content).toBe('Hello world');
  expect(errorLines).toEqual([]);
}

const body = fc.oneof(
  { weight: 4, arbitrary: chatBody.map((value) => JSON.stringify(value) ?? 'null') },
  { weight: 4, arbitrary: runnableBody.map((value) => JSON.stringify(value)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }) },
  // Over the body cap (totalChars × 6 + 64 KiB).
  { weight: 1, arbitrary: fc.integer({ min: 67_000, max: 100_000 }).map((n) => JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'v'.repeat(n) }] })) },
);

const COMPLETIONS: FuzzBudget = { seed: 1431, numRuns: 250, runMs: 15_000, totalMs: 60_000 };

describe('fuzz: OpenAI request bodies against a real gateway', () => {
  it(`arbitrary and near-valid bodies get 200 or a documented 4xx, never a 5xx or a hang, and a good request still works (${runsOf(COMPLETIONS)})`, async () => {
    await fc.assert(fc.asyncProperty(body, postAndCheck), fuzzParameters(COMPLETIONS));
  });
});
