import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../src/runtime/create-runtime.js';
import type { Runtime } from '../src/runtime/runtime.js';
import { startGateway, type Gateway } from '../src/transport/start-gateway.js';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { FakeSynologyNas } from './fakes/fake-synology-nas.js';
import { testConfig } from './helpers/gateway.js';

/**
 * A Synology `user_id` PostgreSQL cannot store (U+0000, sent as `%00`) is refused at the door with 400,
 * like a missing one (DESIGN §4: such text is refused or replaced before it reaches the store). Found by
 * the reliability suite's webhook fuzzing: it used to be taken (200), then the user's conversation, the
 * reply owed and the job could not be written (an error in the log), and the user got an apology for a
 * message that was never tried.
 */

const TOKEN = 'synology-outgoing-token';

describe('POST /synology/webhook with a user_id that cannot be stored', () => {
  let small: FakeBackend;
  let large: FakeBackend;
  let nas: FakeSynologyNas;
  let runtime: Runtime;
  let gateway: Gateway;
  let dataDir: string;
  const errors: string[] = [];

  beforeAll(async () => {
    small = await startFakeBackend();
    large = await startFakeBackend();
    nas = await FakeSynologyNas.start();
    dataDir = mkdtempSync(join(tmpdir(), 'sb-synology-id-'));
    const config = testConfig({ classifier: small, reasoner: large, config: { synology: { token: TOKEN, incomingUrl: nas.url, mode: 'chatbot' } } }, dataDir);
    const log = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) });
    runtime = createRuntime(config, { log });
    await runtime.start();
    gateway = await startGateway({ runtime, log, host: '127.0.0.1', port: 0 });
  });

  afterAll(async () => {
    await runtime?.stop(0);
    await gateway?.close();
    await nas?.close();
    await small?.close();
    await large?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const post = (body: string) =>
    fetch(`${gateway.url}/synology/webhook`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });

  it('answers 400 with a clear body, runs nothing and logs no error', async () => {
    const response = await post(`token=${TOKEN}&user_id=4%00&text=hello`);
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: { type: 'bad_request', message: 'user_id must not contain U+0000' } });
    expect(runtime.status().jobs).toEqual({ active: 0, pending: 0 });
    expect(small.requests.filter((request) => request.path.endsWith('/chat/completions'))).toHaveLength(0);
    expect(errors).toEqual([]);
  });

  it('still takes and answers the same user without the NUL', async () => {
    const response = await post(`token=${TOKEN}&user_id=4&text=hello`);
    expect(response.status).toBe(200);
    const [post4] = await waitForPosts(nas, 1);
    expect(post4?.payload).toEqual({ text: 'Hello world', user_ids: [4] });
    expect(errors).toEqual([]);
  });
});

async function waitForPosts(nas: FakeSynologyNas, count: number) {
  while (nas.posts.length < count) await new Promise((resolve) => nas.events.once('post', resolve));
  return nas.posts;
}
