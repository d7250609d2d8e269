import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../../src/runtime/create-runtime.js';
import type { Runtime } from '../../src/runtime/runtime.js';
import { startGateway, type Gateway } from '../../src/transport/start-gateway.js';
import type { DeliveryClock } from '../../src/transport/synology/delivery.js';
import { startFakeBackend, type FakeBackend } from '../fakes/fake-openai-backend.js';
import { FakeSynologyNas, type NasPost } from '../fakes/fake-synology-nas.js';
import { testConfig } from '../helpers/gateway.js';
import { awkwardString, fuzzParameters, runsOf, type FuzzBudget } from './fuzz-settings.js';

/**
 * Fuzzing `POST /synology/webhook` (issue 14, item 2; DESIGN §5) against a real gateway with a fake NAS
 * (bot API mode, so each reply names its user): arbitrary bodies, fields, encodings and content types get
 * a 2xx or a 4xx with a clear body — never a 5xx — and every message the webhook took gets its reply on
 * the NAS. After each run a good message still gets 200 and its reply, and nothing was logged as an error.
 */

const TOKEN = 'synology-outgoing-token';
/** Deadline for one reply to reach the NAS; the fakes answer at once, so only a lost reply gets near it. */
const REPLY_MS = 5_000;

/** Spacing and backoff on a clock that never waits: the runs are about the webhook, not the pacing. */
const instantClock: DeliveryClock = {
  now: () => Date.now(),
  sleep: (_ms, signal) => (signal.aborted ? Promise.reject(signal.reason as Error) : Promise.resolve()),
};

let small: FakeBackend;
let large: FakeBackend;
let nas: FakeSynologyNas;
let runtime: Runtime;
let gateway: Gateway;
let dataDir: string;
const errorLines: string[] = [];

beforeAll(async () => {
  small = await startFakeBackend();
  large = await startFakeBackend();
  nas = await FakeSynologyNas.start();
  dataDir = mkdtempSync(join(tmpdir(), 'sb-fuzz-synology-'));
  const config = testConfig(
    { classifier: small, reasoner: large, config: { synology: { token: TOKEN, incomingUrl: nas.url, mode: 'chatbot' } } },
    dataDir,
  );
  // Errors the gateway logs are failures too: an input it could not handle without one is a bug.
  const log = pino({ level: 'error' }, { write: (line: string) => void errorLines.push(line) });
  runtime = createRuntime(config, { log });
  await runtime.start();
  // Wrong tokens are part of the fuzz: the per-address limit on them is not what is tested here.
  gateway = await startGateway({ runtime, log, host: '127.0.0.1', port: 0, synology: { clock: instantClock, badTokenLimit: 1_000_000 } });
});

afterAll(async () => {
  await runtime?.stop(0);
  await gateway?.close();
  await nas?.close();
  await small?.close();
  await large?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

interface WebhookRequest {
  body: Uint8Array;
  contentType: string | undefined;
}

async function post({ body, contentType }: WebhookRequest): Promise<{ status: number; text: string; contentType: string | null }> {
  const response = await fetch(`${gateway.url}/synology/webhook`, {
    method: 'POST',
    headers: contentType === undefined ? {} : { 'content-type': contentType },
    body,
  });
  return { status: response.status, text: await response.text(), contentType: response.headers.get('content-type') };
}

/** How a user id appears in the bot API's `user_ids` (a number when it is one, as the gateway sends it). */
function postedUserId(userId: string): unknown {
  const asNumber = Number(userId);
  return Number.isSafeInteger(asNumber) ? asNumber : userId;
}

/** Resolves with the first NAS post from index `from` on for `userId`, or fails after REPLY_MS. */
async function replyFor(userId: string, from: number): Promise<NasPost> {
  const wanted = JSON.stringify(postedUserId(userId));
  const matches = (p: NasPost): boolean => JSON.stringify(p.payload.user_ids?.[0]) === wanted;
  const deadline = Date.now() + REPLY_MS;
  for (;;) {
    const found = nas.posts.slice(from).find(matches);
    if (found) return found;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no reply for user ${wanted} within ${REPLY_MS} ms`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, left);
      nas.events.once('post', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** One run: the request, its answer (2xx/4xx with a clear body), the reply owed, then a good message. */
async function postAndCheck(request: WebhookRequest): Promise<void> {
  errorLines.length = 0;
  const before = nas.posts.length;
  const answer = await post(request);
  expect(answer.status).toBeGreaterThanOrEqual(200);
  expect(answer.status).toBeLessThan(500);
  if (answer.status >= 300) {
    expect(answer.status).toBeGreaterThanOrEqual(400);
    expect(answer.contentType).toMatch(/^application\/json/);
    const body = JSON.parse(answer.text) as { error?: { type?: unknown; message?: unknown } };
    expect(typeof body.error?.type).toBe('string');
    expect(typeof body.error?.message).toBe('string');
    expect(String(body.error?.message).length).toBeGreaterThan(0);
  } else {
    expect(answer.status).toBe(200);
    expect(answer.text).toBe('');
    // The webhook took the message: a user who wrote something always gets a reply (an answer or an apology).
    const form = new URLSearchParams(Buffer.from(request.body).toString('utf8'));
    const userId = form.get('user_id') ?? '';
    if ((form.get('text') ?? '').trim().length > 0) {
      const reply = await replyFor(userId, before);
      expect(reply.payload.text.length).toBeGreaterThan(0);
    }
  }
  // Still serving: a good message is taken and answered.
  const from = nas.posts.length;
  const good = await post(form({ token: TOKEN, user_id: '4', username: 'alice', text: 'still there?' }));
  expect(good.status).toBe(200);
  expect((await replyFor('4', from)).payload.text).toBe('Hello world');
  expect(errorLines).toEqual([]);
}

function form(fields: Record<string, string>): WebhookRequest {
  return { body: new Uint8Array(Buffer.from(new URLSearchParams(fields).toString())), contentType: 'application/x-www-form-urlencoded' };
}

const FIELD_NAMES = ['token', 'user_id', 'username', 'channel_id', 'channel_name', 'post_id', 'timestamp', 'text', 'trigger_word'];

/** The fields Synology sends, each right, odd or missing, plus stray ones. */
const fields = fc
  .record(
    {
      token: fc.oneof({ weight: 4, arbitrary: fc.constant(TOKEN) }, { weight: 1, arbitrary: awkwardString.filter((t) => t.length < 1000) }),
      user_id: fc.oneof(fc.constantFrom('4', '007', ' 5 ', '-1', '1e3', '9007199254740993', 'alice'), awkwardString.filter((t) => t.length < 1000)),
      username: awkwardString.filter((t) => t.length < 1000),
      channel_id: fc.string({ maxLength: 8 }),
      post_id: fc.string({ maxLength: 8 }),
      timestamp: fc.oneof(fc.constant(String(Date.UTC(2026, 0, 1))), fc.string({ maxLength: 8 })),
      text: fc.oneof(fc.constantFrom('hello', '안녕하세요', '   ', '확인', 'yes'), awkwardString),
    },
    { requiredKeys: [] },
  )
  .chain((record) => fc.dictionary(fc.constantFrom(...FIELD_NAMES, 'x', ''), fc.string({ maxLength: 10 }), { maxKeys: 2 }).map((extra) => ({ ...extra, ...record })));

/** A form body, written several ways: properly encoded, raw (unescaped `&`, `=`, `%`), or with broken percent-escapes. */
const formBody = fc
  .tuple(fields, fc.constantFrom('encoded', 'raw', 'broken-escapes', 'repeated-keys'), fc.constantFrom('%', '%z', '%zz', '%C3%28', '%00', '%FF%FE', '%ED%A0%80', '+&=&'))
  .map(([record, style, junk]) => {
    const encoded = new URLSearchParams(record).toString();
    switch (style) {
      case 'encoded':
        return encoded;
      case 'raw':
        return Object.entries(record).map(([key, value]) => `${key}=${value}`).join('&');
      case 'broken-escapes':
        return encoded.replace(/&/g, `${junk}&`) + junk;
      default:
        return `${encoded}&${encoded}`;
    }
  })
  .map((text) => new Uint8Array(Buffer.from(text, 'utf8')));

const body = fc.oneof(
  { weight: 6, arbitrary: formBody },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }).map((text) => new Uint8Array(Buffer.from(text, 'utf8'))) },
  // Bytes that are not UTF-8 at all, with and without a valid token in front.
  { weight: 2, arbitrary: fc.tuple(fc.boolean(), fc.uint8Array({ maxLength: 200 })).map(([withToken, bytes]) => new Uint8Array(Buffer.concat([Buffer.from(withToken ? `token=${TOKEN}&user_id=4&text=` : ''), bytes]))) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((value) => new Uint8Array(Buffer.from(JSON.stringify(value) ?? ''))) },
  // Over the webhook's 256 KiB body limit.
  { weight: 1, arbitrary: fc.integer({ min: 256 * 1024 - 64, max: 300 * 1024 }).map((size) => new Uint8Array(Buffer.from(`token=${TOKEN}&user_id=4&text=${'a'.repeat(size)}`))) },
);

const contentType = fc.oneof(
  fc.constantFrom(
    undefined,
    'application/x-www-form-urlencoded',
    'application/x-www-form-urlencoded; charset=utf-8',
    'application/x-www-form-urlencoded; charset=iso-8859-1',
    'application/json',
    'text/plain',
    'multipart/form-data; boundary=xyz',
    'application/octet-stream',
  ),
  fc.stringMatching(/^[\x21-\x7e][\x20-\x7e]{0,40}$/),
);

const WEBHOOK: FuzzBudget = { seed: 1421, numRuns: 150, runMs: 15_000, totalMs: 60_000 };

describe('fuzz: Synology webhook forms against a real gateway', () => {
  it(`arbitrary bodies, fields, encodings and content types get a 2xx or a 4xx with a clear body, every message taken gets its reply, and a good message still works (${runsOf(WEBHOOK)})`, async () => {
    await fc.assert(
      fc.asyncProperty(body, contentType, (bytes, type) => postAndCheck({ body: bytes, contentType: type })),
      fuzzParameters(WEBHOOK),
    );
  });
});
