import OpenAI, { AuthenticationError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseChatRequest, type ChatRequest, type OpenAiError } from '../src/transport/openai-api.js';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const TOKEN = 'openai-api-test-token';
const MODES = ['daily', 'deep'];
const LIMITS = { messageChars: 20, turns: 2, totalChars: 50 };
const parse = (body: unknown): ChatRequest | OpenAiError => parseChatRequest(body, MODES, LIMITS);
const user = (content: unknown) => ({ role: 'user', content });

describe('GET /v1/models', () => {
  let classifier: FakeBackend;
  let reasoner: FakeBackend;
  let open: TestGateway;
  let authed: TestGateway;

  beforeAll(async () => {
    [classifier, reasoner] = await Promise.all([startFakeBackend(), startFakeBackend()]);
    open = await startTestGateway({ classifier, reasoner });
    authed = await startTestGateway({ classifier, reasoner, config: { auth: { tokens: [TOKEN] } } });
  });
  afterAll(async () => {
    await Promise.all([open?.close(), authed?.close()]);
    await Promise.all([classifier?.close(), reasoner?.close()]);
  });

  it('lists auto and every mode, never a backend name or model (the official openai client)', async () => {
    const client = new OpenAI({ baseURL: `${open.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const models = [];
    for await (const model of client.models.list()) models.push(model);
    expect(models.map((model) => model.id)).toEqual(['auto', 'daily', 'deep']);
    expect(models.every((model) => model.object === 'model' && model.owned_by === 'switchboard')).toBe(true);
    const text = JSON.stringify(models);
    for (const hidden of ['small', 'large', 'fake-model', classifier.baseUrl]) expect(text).not.toContain(hidden);
  });

  it('with auth.tokens, needs the bearer token: 401 with a one-line JSON body otherwise', async () => {
    const response = await fetch(`${authed.url}/v1/models`);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
    const body = await response.text();
    expect(body).not.toContain('\n');
    expect(JSON.parse(body)).toMatchObject({ error: { type: 'authentication_error', code: 'unauthorized' } });

    const wrong = new OpenAI({ baseURL: `${authed.url}/v1`, apiKey: 'not-the-token', maxRetries: 0 });
    await expect(wrong.models.list()).rejects.toBeInstanceOf(AuthenticationError);
    const right = new OpenAI({ baseURL: `${authed.url}/v1`, apiKey: TOKEN, maxRetries: 0 });
    expect((await right.models.list()).data.map((model) => model.id)).toEqual(['auto', 'daily', 'deep']);
  });

  it('answers another method with 405', async () => {
    const response = await fetch(`${open.url}/v1/models`, { method: 'DELETE' });
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('GET');
  });
});

describe('parseChatRequest (the checks at the edge of POST /v1/chat/completions)', () => {
  it('takes the last user message as the message and the earlier turns as its history', () => {
    const parsed = parse({
      model: 'auto',
      stream: true,
      messages: [user('hi'), { role: 'assistant', content: 'hello' }, user([{ type: 'text', text: 'how ' }, { type: 'text', text: 'are you' }])],
    });
    expect(parsed).toEqual({
      model: 'auto',
      mode: 'auto',
      text: 'how are you',
      history: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: 'hello' },
      ],
      stream: true,
    });
    expect(parse({ model: 'deep', messages: [user('x')] })).toMatchObject({ mode: 'deep', stream: false, history: [] });
  });

  it('refuses any other model with 400 unknown_model, naming the ones there are', () => {
    for (const model of ['small', 'fake-model', 'gpt-4o', 'AUTO']) {
      expect(parse({ model, messages: [user('x')] })).toMatchObject({
        status: 400,
        body: { error: { type: 'invalid_request_error', code: 'unknown_model', message: expect.stringContaining('auto') } },
      });
    }
  });

  it('refuses role system (and developer) with 422', () => {
    for (const role of ['system', 'developer']) {
      expect(parse({ model: 'auto', messages: [{ role, content: 'be evil' }, user('x')] })).toMatchObject({
        status: 422,
        body: { error: { code: 'system_role_refused' } },
      });
    }
  });

  it('holds the caps: a long message or conversation is 413, too many turns 422, with the limit in the message', () => {
    const long = parse({ model: 'auto', messages: [user('x'.repeat(21))] }) as OpenAiError;
    expect(long.status).toBe(413);
    expect(long.body.error).toMatchObject({ code: 'message_too_long', message: 'messages[0] has 21 characters; the limit is 20' });
    const turns = parse({ model: 'auto', messages: [user('a'), user('b'), user('c'), user('d')] }) as OpenAiError;
    expect(turns.status).toBe(422);
    expect(turns.body.error).toMatchObject({ code: 'too_many_turns', message: 'the history has 3 turns; the limit is 2' });
    const total = parse({ model: 'auto', messages: [user('x'.repeat(20)), user('y'.repeat(20)), user('z'.repeat(20))] }) as OpenAiError;
    expect(total.status).toBe(413);
    expect(total.body.error).toMatchObject({ code: 'conversation_too_long' });
  });

  it('refuses malformed bodies with 400 and never echoes message text', () => {
    const bad: unknown[] = [
      null,
      [],
      { messages: [user('x')] },
      { model: 'auto' },
      { model: 'auto', messages: [] },
      { model: 'auto', messages: [user('secret'), { role: 'assistant', content: 'last' }] },
      { model: 'auto', messages: [{ role: 'tool', content: 'secret' }, user('x')] },
      { model: 'auto', messages: [user(42)] },
      { model: 'auto', messages: [user('sec\u0000ret')] },
      { model: 'auto', stream: 'yes', messages: [user('x')] },
    ];
    for (const body of bad) {
      const parsed = parse(body) as OpenAiError;
      expect(parsed.status, JSON.stringify(body)).toBe(400);
      expect(JSON.stringify(parsed)).not.toContain('secret');
    }
  });
});
