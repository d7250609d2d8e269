/**
 * The OpenAI API door of the fault matrix, shared by fault-matrix-openai.test.ts (`stream: true`) and
 * fault-matrix-openai-json.test.ts (one JSON answer): two files so the suite's two workers share the load.
 */
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  cellName,
  expected,
  FAULTS,
  HEALTHY_ANSWERS,
  slotsFreed,
  startMatrixGateway,
  TEXTS,
  watchUnhandledRejections,
  type Fault,
  type MatrixGateway,
  type Stage,
} from './fault-matrix.js';

/** Reasons that say the model server could not answer: 503 `backend_unavailable` (docs/http.md). */
const BACKEND_REASONS = new Set(['backend_unavailable', 'backend_timeout', 'backend_disconnected', 'stream_deadline_exceeded']);

/** `stream: true` (SSE) or one `chat.completion`. */
export type Variant = 'stream' | 'json';

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


/**
 * Defines the door's cells for `variant` at `stages`, with the unhandled-rejection watch: each cell
 * posts a completion, checks the status or error chunk docs/http.md gives its ending, then that the
 * slots are free, the next completion answers and /healthz answers.
 */
export function describeOpenAiMatrix(variant: Variant, stages: readonly Stage[]): void {
  const rejections = watchUnhandledRejections();
  afterEach(() => expect(rejections.seen).toEqual([]));
  afterAll(() => rejections.stop());

  describe.each(stages)(`fault matrix over the OpenAI API (${variant}): %s`, (stage: Stage) => {
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
}
