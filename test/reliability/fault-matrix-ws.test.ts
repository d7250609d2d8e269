/**
 * Fault matrix, WebSocket door: every backend fault at every job stage, over a real `ws` client.
 *
 * | stage ↓ fault →     | refused | 5xx (503) | hang before headers | stall mid-stream | socket dropped | malformed | slow drip | restarted |
 * |---------------------|---------|-----------|---------------------|------------------|----------------|-----------|-----------|-----------|
 * | classify¹           | done²   | done²     | done² (timeoutMs)   | done² (timeoutMs)| done²          | done³     | done² (timeoutMs) | done² |
 * | route (stream)      | backend_unavailable | backend_unavailable | backend_timeout (timeoutMs) | backend_timeout (idleTimeoutMs) | backend_disconnected | backend_protocol_error | stream_deadline_exceeded (streamDeadlineMs) | backend_disconnected |
 * | react (tools: true)⁴| backend_unavailable | backend_unavailable | backend_timeout (timeoutMs) | backend_timeout (idleTimeoutMs) | backend_disconnected | backend_protocol_error | stream_deadline_exceeded (streamDeadlineMs) | backend_disconnected |
 * | tools (calendar)⁵   | tool_failed | tool_failed | tool_timeout (10 s) | tool_timeout (10 s) | tool_failed | tool_failed | tool_timeout (10 s) | tool_failed |
 *
 * ¹ Classify is one non-streamed call: "stall" is a body that stops halfway, "slow drip" a body of
 *   whitespace that never ends, "malformed" a body that is not JSON, "dropped"/"restarted" a body cut
 *   halfway — all bounded by `timeoutMs`, the whole call's limit.
 * ² A classifier that cannot answer is not asked again: the reasoner answers, the job ends `done`.
 * ³ A reply that is not the protocol is a bad reply, not a down server: the classifier answers directly.
 * ⁴ Two tool rounds search the documents (real document search), the final streamed round meets the
 *   fault; "refused" refuses the loop's first round (a server that is not there refuses every round).
 * ⁵ The calendar tool against a real Radicale behind a fault proxy (helpers/fault-proxy.ts); the faults
 *   are the CalDAV server's: "malformed" is a 207 whose XML is cut, "slow drip" whitespace for ever. A
 *   tool call's limit is DESIGN §6's fixed 10 s (no config key), so those three cells take 10 s each.
 * Every cell applies: none is left out. `fallback.reasonerToClassifier` is off, so a reasoner's failure
 * shows its own reason (the fallback has its own tests). After each cell: both backends' slots are free,
 * the next job on the same gateway is answered, /healthz answers, no unhandled rejection.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../helpers/gateway.js';
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

/** Sends one chat and waits for its terminal event. */
async function chat(client: TestClient, text: string, timeoutMs: number) {
  const started = performance.now();
  const { jobId } = await client.chat(text);
  const events = await client.finished(jobId, timeoutMs);
  const end = events.at(-1)!;
  return { end, events, answer: client.answer(jobId), elapsedMs: performance.now() - started };
}

describe.each(STAGES)('fault matrix over WebSocket: %s', (stage: Stage) => {
  let gateway: MatrixGateway;
  let client: TestClient;

  beforeAll(async () => {
    gateway = await startMatrixGateway(stage);
    client = await TestClient.connect(gateway.wsUrl);
    // The first job warms everything a fault should meet mid-way (the calendar's discovery, keep-alive pools).
    const first = await chat(client, TEXTS[stage], 15_000);
    expect(first.end.event).toBe('done');
  }, 60_000);

  afterAll(async () => {
    client?.close();
    await gateway?.close();
  });

  it.each(FAULTS.map((fault) => [cellName(stage, fault), fault] as const))('%s', async (_name, fault: Fault) => {
    const want = expected(stage, fault);
    await gateway.arm(fault);
    const got = await chat(client, TEXTS[stage], want.timerMs + 15_000);
    await gateway.disarm();

    expect(gateway.faultReached()).toBe(true);
    // Exactly one terminal event, last.
    expect(got.events.filter((e) => ['done', 'error', 'cancelled'].includes(e.event))).toHaveLength(1);
    expect(got.end.event).toBe(want.terminal);
    if (want.terminal === 'error') {
      expect(got.end.data.reason).toBe(want.reason);
      expect(String(got.end.data.message)).not.toBe('');
    } else expect(got.answer).toBe(want.answer);
    // Ended by the timer the table names, not earlier.
    expect(got.elapsedMs).toBeGreaterThanOrEqual(want.timerMs);

    await slotsFreed(gateway.runtime);
    const next = await chat(client, TEXTS[stage], 15_000);
    expect(next.end.event).toBe('done');
    expect(next.answer).toBe(HEALTHY_ANSWERS[stage]);
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
  });
});
