import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../src/log.js';
import { createRuntime } from '../src/runtime/create-runtime.js';
import type { Runtime } from '../src/runtime/runtime.js';
import { startGateway, type Gateway } from '../src/transport/start-gateway.js';
import { payloadBody, PART_SPACING_MS, type DeliveryClock } from '../src/transport/synology/delivery.js';
import { splitMessage } from '../src/transport/synology/split-message.js';
import { tokenMatches } from '../src/transport/synology/webhook.js';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { closedPort } from './helpers/closed-port.js';
import { testBackend, testConfig } from './helpers/gateway.js';
import { scriptModels } from './helpers/scripted-models.js';

/**
 * The Synology Chat bot (DESIGN §5) against a fake NAS — a real HTTP server that records each post with
 * the virtual clock's time — and the fake model servers. The spacing and the backoff run on that clock:
 * `sleep` advances it at once, so nothing here waits for real time.
 */

const TOKEN = 'synology-outgoing-token';

class VirtualClock implements DeliveryClock {
  t = 1_000_000;
  readonly sleeps: number[] = [];
  now = (): number => this.t;
  sleep = (ms: number, signal: AbortSignal): Promise<void> => {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    this.sleeps.push(ms);
    this.t += ms;
    return Promise.resolve();
  };
}

interface Post {
  at: number;
  contentType: string | undefined;
  payload: { text: string; user_ids?: unknown[] };
  status: number;
}

/** A fake Synology incoming webhook: answers from `script` (then 200 `{"success":true}`), records everything. */
class FakeNas {
  readonly posts: Post[] = [];
  readonly script: Array<{ status: number; headers?: Record<string, string> }> = [];
  constructor(
    readonly server: Server,
    readonly url: string,
  ) {}
  /** The posts that were accepted (status 200). */
  get delivered(): Post[] {
    return this.posts.filter((post) => post.status === 200);
  }
  static async start(clock: VirtualClock): Promise<FakeNas> {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    const nas = new FakeNas(server, `http://127.0.0.1:${port}/webapi/entry.cgi?api=SYNO.Chat.External&method=incoming&version=2&token=x`);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        const next = nas.script.shift() ?? { status: 200 };
        nas.posts.push({ at: clock.now(), contentType: req.headers['content-type'], payload: JSON.parse(form.get('payload') ?? 'null') as Post['payload'], status: next.status });
        res.writeHead(next.status, { 'content-type': 'application/json', ...next.headers });
        res.end(next.status === 200 ? '{"success":true}' : '{"success":false}');
      });
    });
    return nas;
  }
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

interface Setup {
  gateway: Gateway;
  runtime: Runtime;
  dataDir: string;
  close(): Promise<void>;
}

async function startSynologyGateway(options: {
  classifier: FakeBackend | { baseUrl: string };
  reasoner: FakeBackend | { baseUrl: string };
  nas: FakeNas;
  clock: VirtualClock;
  mode?: 'incoming' | 'chatbot';
  /** Config over the test defaults (e.g. `backends` with a status API). */
  config?: Record<string, unknown>;
  /** Receives every log line (JSON), at debug level. */
  logLines?: string[];
}): Promise<Setup> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-synology-'));
  const config = testConfig(
    {
      classifier: options.classifier as FakeBackend,
      reasoner: options.reasoner as FakeBackend,
      config: { ...options.config, synology: { token: TOKEN, incomingUrl: options.nas.url, mode: options.mode ?? 'incoming' } },
    },
    dataDir,
  );
  const lines = options.logLines;
  const log = lines ? pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) }) : createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const runtime = createRuntime(config, { log });
  await runtime.start();
  const gateway = await startGateway({ runtime, log, host: '127.0.0.1', port: 0, synology: { clock: options.clock, badTokenLimit: 3 } });
  return {
    gateway,
    runtime,
    dataDir,
    close: async () => {
      await runtime.stop(0);
      await gateway.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function webhookPost(url: string, fields: Record<string, string>): Promise<Response> {
  return fetch(`${url}/synology/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });
}

function message(text: string, userId = '4', token = TOKEN): Record<string, string> {
  return { token, user_id: userId, username: 'alice', channel_id: '7', post_id: '99', timestamp: String(Date.now()), text };
}

const json = (value: unknown) => JSON.stringify(value);

/** A 5000-character answer of numbered sentences on a few lines. */
const LONG_ANSWER = Array.from({ length: 100 }, (_, n) => `Sentence number ${String(n).padStart(3, '0')} says little but says it well.`)
  .join(' ')
  .slice(0, 5000)
  .replace(/ \S*$/, ' end.');

describe('splitting an answer', () => {
  it('cuts at most 2000 characters at line, then sentence boundaries, keeping the order', () => {
    const parts = splitMessage(LONG_ANSWER);
    expect(parts.length).toBe(3);
    for (const part of parts) expect(part.length).toBeLessThanOrEqual(2000);
    for (const part of parts.slice(0, -1)) expect(part).toMatch(/\.$/);
    expect(parts.join(' ')).toBe(LONG_ANSWER.trim());
    const lines = `${'a'.repeat(1500)}\n${'b'.repeat(1500)}`;
    expect(splitMessage(lines)).toEqual(['a'.repeat(1500), 'b'.repeat(1500)]);
    const unbroken = '가'.repeat(4500);
    expect(splitMessage(unbroken).map((part) => part.length)).toEqual([2000, 2000, 500]);
    expect(splitMessage('😀'.repeat(1500)).every((part) => part.length <= 2000 && !/^[\udc00-\udfff]/.test(part))).toBe(true);
  });

  it('writes the payload as Synology takes it, with user_ids for the bot API', () => {
    const url = 'http://nas/x';
    expect(new URLSearchParams(payloadBody({ url, mode: 'incoming' }, '4', 'hi & bye')).get('payload')).toBe(json({ text: 'hi & bye' }));
    expect(new URLSearchParams(payloadBody({ url, mode: 'chatbot' }, '4', 'hi')).get('payload')).toBe(json({ text: 'hi', user_ids: [4] }));
    expect(tokenMatches(TOKEN, TOKEN)).toBe(true);
    expect(tokenMatches(`${TOKEN}x`, TOKEN)).toBe(false);
    expect(tokenMatches('', TOKEN)).toBe(false);
  });
});

describe('POST /synology/webhook', () => {
  let small: FakeBackend;
  let large: FakeBackend;
  let nas: FakeNas;
  let clock: VirtualClock;
  let setup: Setup;

  beforeAll(async () => {
    small = await startFakeBackend();
    large = await startFakeBackend();
    scriptModels(small, large, {
      classify: (text) => {
        if (text === 'long please') return json({ action: 'direct', response: LONG_ANSWER });
        if (text === 'slow hello') return { content: json({ action: 'direct', response: 'Hello, slowly.' }), headersDelayMs: 300 };
        return json({ action: 'direct', response: `You said: ${text}` });
      },
    });
    clock = new VirtualClock();
    nas = await FakeNas.start(clock);
    setup = await startSynologyGateway({ classifier: small, reasoner: large, nas, clock });
  });

  afterAll(async () => {
    await setup?.close();
    await nas?.close();
    await small?.close();
    await large?.close();
  });

  it('answers 200 at once with an empty body, then posts the answer to the incoming webhook', async () => {
    nas.posts.length = 0;
    const response = await webhookPost(setup.gateway.url, message('slow hello'));
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('');
    expect(nas.posts).toHaveLength(0);
    await vi.waitFor(() => expect(nas.delivered).toHaveLength(1), { timeout: 10_000 });
    expect(nas.posts[0]?.payload).toEqual({ text: 'Hello, slowly.' });
    expect(nas.posts[0]?.contentType).toBe('application/x-www-form-urlencoded');
  });

  it('sends a 5000-character answer as three ordered parts of at most 2000 characters, 500 ms apart', async () => {
    nas.posts.length = 0;
    expect((await webhookPost(setup.gateway.url, message('long please'))).status).toBe(200);
    await vi.waitFor(() => expect(nas.delivered).toHaveLength(3), { timeout: 10_000 });
    const texts = nas.posts.map((post) => post.payload.text);
    for (const text of texts) expect(text.length).toBeLessThanOrEqual(2000);
    expect(texts.join(' ')).toBe(LONG_ANSWER);
    const at = nas.posts.map((post) => post.at);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(PART_SPACING_MS);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(PART_SPACING_MS);
  });

  it('retries after a 5xx with backoff and honours a 429 Retry-After', async () => {
    nas.posts.length = 0;
    clock.sleeps.length = 0;
    nas.script.push({ status: 503 }, { status: 429, headers: { 'retry-after': '7' } });
    expect((await webhookPost(setup.gateway.url, message('try again'))).status).toBe(200);
    await vi.waitFor(() => expect(nas.delivered).toHaveLength(1), { timeout: 10_000 });
    expect(nas.posts.map((post) => post.status)).toEqual([503, 429, 200]);
    expect(nas.posts.every((post) => post.payload.text === 'You said: try again')).toBe(true);
    const at = nas.posts.map((post) => post.at);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(1_000);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(7_000);
    expect(clock.sleeps).toEqual([1_000, 7_000]);
  });

  it('refuses a wrong or missing token with 403 and runs nothing; repeated bad tokens get 429', async () => {
    nas.posts.length = 0;
    const before = small.chatRequests.length;
    expect((await webhookPost(setup.gateway.url, message('sneaky', '4', 'wrong-token'))).status).toBe(403);
    const { token: _token, ...withoutToken } = message('sneaky');
    expect((await webhookPost(setup.gateway.url, withoutToken)).status).toBe(403);
    expect((await webhookPost(setup.gateway.url, message('sneaky', '4', TOKEN.slice(0, -1)))).status).toBe(403);
    // The fourth bad token within the window is refused without being looked at, and so is a good one.
    expect((await webhookPost(setup.gateway.url, message('sneaky', '4', 'wrong-token'))).status).toBe(429);
    const limited = await webhookPost(setup.gateway.url, message('hello'));
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('60');
    expect(small.chatRequests.length).toBe(before);
    // A minute later (on the clock) the address may try again.
    clock.t += 60_000;
    expect((await webhookPost(setup.gateway.url, message('after a minute'))).status).toBe(200);
    await vi.waitFor(() => expect(nas.delivered).toHaveLength(1), { timeout: 10_000 });
    expect(nas.posts.map((post) => post.payload.text)).toEqual(['You said: after a minute']);
  });

  it('keeps one conversation per Synology user', async () => {
    nas.posts.length = 0;
    expect((await webhookPost(setup.gateway.url, message('first from five', '5'))).status).toBe(200);
    await vi.waitFor(() => expect(nas.delivered).toHaveLength(1), { timeout: 10_000 });
    expect((await webhookPost(setup.gateway.url, message('second from five', '5'))).status).toBe(200);
    await vi.waitFor(() => expect(nas.delivered).toHaveLength(2), { timeout: 10_000 });
    const last = small.chatRequests.at(-1);
    expect(JSON.stringify(last?.body)).toContain('first from five');
    expect(JSON.stringify(last?.body)).not.toContain('You said: try again');
  });
});

describe('POST /synology/webhook with the model servers down', () => {
  let nas: FakeNas;
  let clock: VirtualClock;
  let setup: Setup;
  const logLines: string[] = [];

  beforeAll(async () => {
    clock = new VirtualClock();
    nas = await FakeNas.start(clock);
    const down = { baseUrl: `http://127.0.0.1:${await closedPort()}/v1` };
    setup = await startSynologyGateway({ classifier: down, reasoner: down, nas, clock, mode: 'chatbot', logLines });
  });

  afterAll(async () => {
    await setup?.close();
    await nas?.close();
  });

  it('still replies: an apology, to the bot API with user_ids', async () => {
    expect((await webhookPost(setup.gateway.url, message('anyone there?', '42'))).status).toBe(200);
    await vi.waitFor(() => expect(nas.delivered).toHaveLength(1), { timeout: 15_000 });
    const { payload } = nas.posts[0]!;
    expect(payload.user_ids).toEqual([42]);
    expect(payload.text).toMatch(/^Sorry, I could not answer that\./);
  });

  it('logs a failed job and a delivery given up once each, with the job id and reason, never the text or token', async () => {
    nas.posts.length = 0;
    nas.script.push(...Array.from({ length: 6 }, () => ({ status: 500 })));
    expect((await webhookPost(setup.gateway.url, message('a secret question', '42'))).status).toBe(200);
    await vi.waitFor(() => expect(nas.posts).toHaveLength(6), { timeout: 15_000 });
    await vi.waitFor(() => expect(logLines.some((line) => line.includes('synology delivery failed'))).toBe(true), { timeout: 5_000 });
    const records = logLines.map((line) => JSON.parse(line) as { msg: string; jobId?: string; reason?: string });
    const given = records.filter((record) => record.msg === 'synology delivery failed');
    expect(given).toHaveLength(1);
    expect(given[0]).toMatchObject({ reason: 'http 500' });
    expect(given[0]?.jobId).toMatch(/^[0-9a-f-]{36}$/);
    const failed = records.filter((record) => record.msg === 'synology job failed; sending an apology');
    expect(failed).toHaveLength(2);
    expect(failed.every((record) => typeof record.jobId === 'string' && typeof record.reason === 'string')).toBe(true);
    const all = logLines.join('\n');
    expect(all).not.toContain('a secret question');
    expect(all).not.toContain('anyone there?');
    expect(all).not.toContain(TOKEN);
  });
});

describe('POST /synology/webhook with a busy reasoner', () => {
  let small: FakeBackend;
  let large: FakeBackend;
  let nas: FakeNas;
  let setup: Setup;

  beforeAll(async () => {
    small = await startFakeBackend();
    large = await startFakeBackend();
    // The reasoner's status API says two jobs are running: load `busy`, from the first probe on.
    large.status = { active_jobs: 2, total_requests: 10 };
    scriptModels(small, large, { classify: () => json({ action: 'route' }), reason: () => ({ content: ['The large ', 'model answers.'] }) });
    const clock = new VirtualClock();
    nas = await FakeNas.start(clock);
    setup = await startSynologyGateway({
      classifier: small,
      reasoner: large,
      nas,
      clock,
      config: { backends: { small: testBackend(small), large: { ...testBackend(large), statusUrl: large.statusUrl } } },
    });
  });

  afterAll(async () => {
    await setup?.close();
    await nas?.close();
    await small?.close();
    await large?.close();
  });

  it('posts the busy notice first, then the answer', async () => {
    await vi.waitFor(() => expect(setup.runtime.status().backends.large?.load).toBe('busy'), { timeout: 5_000 });
    expect((await webhookPost(setup.gateway.url, message('think hard about this'))).status).toBe(200);
    await vi.waitFor(() => expect(nas.delivered).toHaveLength(2), { timeout: 10_000 });
    expect(nas.posts.map((post) => post.payload.text)).toEqual(['The reasoning model is busy right now, so this may take a while.', 'The large model answers.']);
  });
});
