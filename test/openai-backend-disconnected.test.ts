/**
 * A model server that drops the connection mid-answer (`backend_disconnected`) could not answer, like one
 * that refused or timed out: the OpenAI API says so as 503 `backend_unavailable` before the first byte, and
 * as a `backend_unavailable` error chunk after it — it was a 500 `server_error`, as if the gateway had
 * failed. Found by the fault matrix (test/reliability/fault-matrix-openai.test.ts, route × dropped).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

describe('OpenAI API: the model server drops the connection mid-answer', () => {
  let small: FakeBackend;
  let large: FakeBackend;
  let gateway: TestGateway;

  beforeAll(async () => {
    small = await startFakeBackend();
    large = await startFakeBackend();
    gateway = await startTestGateway({ classifier: small, reasoner: large, config: { fallback: { reasonerToClassifier: false } } });
  });

  afterAll(async () => {
    await gateway?.close();
    await small?.close();
    await large?.close();
  });

  const post = (stream: boolean) =>
    fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'deep', stream, messages: [{ role: 'user', content: 'hello' }] }),
    });

  it('answers 503 backend_unavailable with error_reason backend_disconnected when nothing was sent yet', async () => {
    large.enqueue({ fault: 'drop_mid_stream', content: ['partial '] });
    const response = await post(false);
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ error: { type: 'backend_unavailable', error_reason: 'backend_disconnected' } });
  });

  it('ends a started stream with a backend_unavailable error chunk and no [DONE]', async () => {
    large.enqueue({ fault: 'drop_mid_stream', content: ['partial '] });
    const response = await post(true);
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).not.toContain('[DONE]');
    const last = JSON.parse(text.trim().split('\n').at(-1)!.slice('data: '.length)) as unknown;
    expect(last).toMatchObject({ error: { type: 'backend_unavailable', error_reason: 'backend_disconnected' } });
  });
});
