/**
 * Fault matrix, OpenAI API door: every backend fault at every job stage, as `POST /v1/chat/completions`
 * with `model: "auto"` over undici, streamed (`stream: true`) and as one JSON answer. The job endings
 * are those of fault-matrix-ws.test.ts (its table and notes hold here too); what this door answers
 * for them is docs/http.md's:
 *
 * | job ending                                  | stream: true                                   | stream: false (json)     |
 * |---------------------------------------------|------------------------------------------------|--------------------------|
 * | done                                        | 200 SSE, the answer, `data: [DONE]`            | 200 `chat.completion`    |
 * | error, nothing streamed, a backend reason¹  | 503 `backend_unavailable` + `error_reason`     | same                     |
 * | error, nothing streamed, another reason²    | 500 `server_error` + `error_reason`            | same                     |
 * | error after the first chunk                 | 200 SSE, one error chunk (type as above), no `[DONE]` | status as above  |
 *
 * ¹ `backend_unavailable`, `backend_timeout`, `backend_disconnected`, `stream_deadline_exceeded`: the model
 *   server could not answer. ² `backend_protocol_error`, `tool_failed`, `tool_timeout`.
 *
 * | stage ↓ fault → | refused | 5xx | hang before headers | stall | dropped | malformed | slow drip | restarted |
 * |-----------------|---------|-----|---------------------|-------|---------|-----------|-----------|-----------|
 * | classify        | 200 answer (the reasoner; malformed: the classifier) — both variants                          |
 * | route, react    | 503 | 503 | 503 | chunk / 503 | chunk / 503 | chunk / 500 | chunk / 503 | chunk / 503 |
 * | tools, stream   | 500 `tool_failed` | 500 | 500 `tool_timeout` | 500 `tool_timeout` | 500 | 500 | 500 `tool_timeout` | 500 |
 * | tools, json     | not run: a tool fails before anything is streamed, so the json answer is the streamed one's status, cell for cell |
 *
 * After each cell: slots free, the next completion answers, /healthz answers, no unhandled rejection.
 */
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  cellName,
  expected,
  FAULTS,
  HEALTHY_ANSWERS,
  slotsFreed,
  STAGES,
  startMatrixGateway,
  TEXTS,
  watchUnhandledRejections,
  type Fault,
  type MatrixGateway,
  type Stage,
} from './helpers/fault-matrix.js';

const rejections = watchUnhandledRejections();
afterEach(() => expect(rejections.seen).toEqual([]));
afterAll(() => rejections.stop());

/** Reasons that say the model server could not answer: 503 `backend_unavailable` (docs/http.md). */
const BACKEND_REASONS = new Set(['backend_unavailable', 'backend_timeout', 'backend_disconnected', 'stream_deadline_exceeded']);

type Variant = 'stream' | 'json';

interface Completion {
  status: number;
  /** The answer text (SSE: the content deltas joined). */
  answer: string;
  /** The error object: the JSON body's, or the SSE error chunk's. */
  error: { type?: string; error_reason?: string; message?: string } | null;
  /** SSE only: ended with `data: [DONE]`. */
  doneMarker: boolean;
  elapsedMs: number;
}

async function complete(url: string, text: string, variant: Variant): Promise<Completion> {
  const started = performance.now();
  const response = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'auto', stream: variant === 'stream', messages: [{ role: 'user', content: text }] }),
  });
  const body = await response.body.text();
  const elapsedMs = performance.now() - started;
  const type = String(response.headers['content-type'] ?? '');
  if (!type.startsWith('text/event-stream')) {
    const parsed = JSON.parse(body) as { error?: Completion['error']; choices?: Array<{ message: { content: string } }> };
    return { status: response.statusCode, answer: parsed.choices?.[0]?.message.content ?? '', error: parsed.error ?? null, doneMarker: false, elapsedMs };
  }
  let answer = '';
  let error: Completion['error'] = null;
  let doneMarker = false;
  for (const line of body.split('\n')) {
    if (!line.startsWith('data: ')) continue;
    const data = line.slice('data: '.length);
    if (data === '[DONE]') {
      doneMarker = true;
      continue;
    }
    const chunk = JSON.parse(data) as { error?: Completion['error']; choices?: Array<{ delta: { content?: string } }> };
    if (chunk.error) error = chunk.error;
    answer += chunk.choices?.[0]?.delta.content ?? '';
  }
  return { status: response.statusCode, answer, error, doneMarker, elapsedMs };
}

const CELLS = STAGES.flatMap((stage) => (['stream', 'json'] as const).map((variant) => [stage, variant] as const)).filter(
  ([stage, variant]) => !(stage === 'tools' && variant === 'json'),
);

describe.each(CELLS)('fault matrix over the OpenAI API: %s, %s', (stage: Stage, variant: Variant) => {
  let gateway: MatrixGateway;

  beforeAll(async () => {
    gateway = await startMatrixGateway(stage);
    const first = await complete(gateway.url, TEXTS[stage], variant);
    expect(first.status).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await gateway?.close();
  });

  it.each(FAULTS.map((fault) => [cellName(stage, fault), fault] as const))('%s', async (_name, fault: Fault) => {
    const want = expected(stage, fault);
    await gateway.arm(fault);
    const got = await complete(gateway.url, TEXTS[stage], variant);
    await gateway.disarm();

    expect(gateway.faultReached()).toBe(true);
    if (want.terminal === 'done') {
      expect(got.status).toBe(200);
      expect(got.answer).toBe(want.answer);
      if (variant === 'stream') expect(got.doneMarker).toBe(true);
    } else {
      const backend = BACKEND_REASONS.has(want.reason!);
      const type = backend ? 'backend_unavailable' : 'server_error';
      if (variant === 'stream' && want.streamedFirst) {
        // The stream had started: one error chunk ends it, and no [DONE] makes the cut answer look whole.
        expect(got.status).toBe(200);
        expect(got.doneMarker).toBe(false);
        expect(got.answer.length).toBeGreaterThan(0);
      } else expect(got.status).toBe(backend ? 503 : 500);
      expect(got.error).toMatchObject({ type, error_reason: want.reason });
    }
    expect(got.elapsedMs).toBeGreaterThanOrEqual(want.timerMs);

    await slotsFreed(gateway.runtime);
    const next = await complete(gateway.url, TEXTS[stage], variant);
    expect(next.status).toBe(200);
    expect(next.answer).toBe(HEALTHY_ANSWERS[stage]);
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
  });
});
