import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import OpenAI from 'openai';
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createRuntime, type Runtime } from '../src/runtime/create-runtime.js';
import { startGateway, type Gateway } from '../src/transport/start-gateway.js';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { testConfig } from './helpers/gateway.js';

/** The OpenAI API logs neither what users and models say nor the token, at any level (trace here). */
const TOKEN = 'planted-openai-token-Kq7';
const SAID = 'planted-openai-message-Vb3';
const ANSWERED = 'planted-openai-answer-Zt5';

const lines: string[] = [];
let small: FakeBackend;
let large: FakeBackend;
let runtime: Runtime;
let gateway: Gateway;
let dataDir: string;

beforeAll(async () => {
  [small, large] = await Promise.all([startFakeBackend({ defaultReply: { content: [ANSWERED, ' end'] } }), startFakeBackend({ defaultReply: { fault: 'refuse' } })]);
  dataDir = mkdtempSync(join(tmpdir(), 'sb-openai-log-'));
  const log = pino({ level: 'trace' }, new Writable({ write: (chunk, _encoding, done) => (lines.push(String(chunk)), done()) }));
  runtime = createRuntime(testConfig({ classifier: small, reasoner: large, config: { auth: { tokens: [TOKEN] } } }, dataDir), { log });
  await runtime.start();
  gateway = await startGateway({ runtime, log, host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await runtime?.stop(0);
  await gateway?.close();
  await Promise.all([small?.close(), large?.close()]);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

it('a completion, a failing one, a refused one and a wrong token leave no text or token in the log', async () => {
  const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: TOKEN, maxRetries: 0 });
  const history = [{ role: 'user' as const, content: `${SAID} before` }, { role: 'assistant' as const, content: `${SAID} reply` }, { role: 'user' as const, content: SAID }];
  expect((await client.chat.completions.create({ model: 'daily', messages: history })).choices[0]!.message.content).toBe(`${ANSWERED} end`);
  await expect(client.chat.completions.create({ model: 'deep', messages: history })).rejects.toMatchObject({ status: 503 });
  await expect(client.chat.completions.create({ model: 'auto', messages: [{ role: 'system', content: SAID }, ...history] })).rejects.toMatchObject({ status: 422 });
  const wrong = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: `${TOKEN}-wrong`, maxRetries: 0 });
  await expect(wrong.chat.completions.create({ model: 'daily', messages: history })).rejects.toMatchObject({ status: 401 });
  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines) for (const secret of [TOKEN, SAID, ANSWERED]) expect(line).not.toContain(secret);
});
