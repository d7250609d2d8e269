import fc from 'fast-check';
import pino from 'pino';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientFrameSchema } from '../../src/transport/ws-frames.js';
import { startFakeBackend, type FakeBackend } from '../fakes/fake-openai-backend.js';
import { startTestGateway, TestClient, type Frame, type TestGateway } from '../helpers/gateway.js';
import { awkwardString, awkwardValue, fuzzParameters, runsOf, type FuzzBudget } from './fuzz-settings.js';

/**
 * Fuzzing WebSocket frames against a real gateway (issue 14, item 2; DESIGN §4). Each run opens a
 * connection, sends one fuzzed frame and checks the reply: an `error` frame with a code from the
 * contract and a message, or a valid reply (`accepted` followed by the job's terminal event, `pong`,
 * `status`). Then the same connection still answers `ping` with `pong` and runs a good `chat` to its
 * answer, so a frame that broke the connection or the server fails the run where it happened. Nothing
 * may be logged as an error meanwhile.
 */

/** The `error` codes DESIGN §4 names; `store_unavailable` would mean the embedded store failed here. */
const CONTRACT_CODES = ['bad_request', 'too_large', 'unknown_job', 'unknown_conversation', 'rate_limited'];
const REPLY_TYPES = new Set(['error', 'accepted', 'pong', 'status']);
const TERMINAL = new Set(['done', 'error', 'cancelled']);
/** Deadline for one reply; the fakes answer at once, so only a hang gets near it. */
const REPLY_MS = 5_000;

let small: FakeBackend;
let large: FakeBackend;
let gateway: TestGateway;
const errorLines: string[] = [];

beforeAll(async () => {
  small = await startFakeBackend();
  large = await startFakeBackend();
  // Many runs one after another from one address: the per-connection frame rate is not what is tested.
  // Errors the runtime logs are failures too: an input it could not handle without one is a bug.
  const log = pino({ level: 'error' }, { write: (line: string) => void errorLines.push(line) });
  gateway = await startTestGateway({ classifier: small, reasoner: large, config: { limits: { framesPerSecond: 10_000 } }, deps: { log } });
});

afterAll(async () => {
  await gateway?.close();
  await small?.close();
  await large?.close();
});

/** The first frame at or after `from` that answers a frame (not a job event). */
function replyAfter(client: TestClient, from: number): Promise<Frame> {
  return client.waitFor((frame) => REPLY_TYPES.has(frame.type), REPLY_MS, from);
}

function expectContractError(frame: Frame): void {
  expect(frame.type).toBe('error');
  expect(CONTRACT_CODES).toContain(frame.code);
  expect(typeof frame.message).toBe('string');
  expect(String(frame.message).length).toBeGreaterThan(0);
  // The server's catch-all for a frame it failed to process: a bug, even though it is worded as an error.
  expect(String(frame.message)).not.toMatch(/^internal error/);
}

/** Checks the reply to a fuzzed frame; an accepted chat must also reach its terminal event. */
async function expectValidReply(client: TestClient, reply: Frame): Promise<void> {
  switch (reply.type) {
    case 'error':
      return expectContractError(reply);
    case 'accepted': {
      expect(typeof reply.jobId).toBe('string');
      expect(typeof reply.conversationId).toBe('string');
      const events = await client.finished(String(reply.jobId), REPLY_MS);
      expect(events.map((event) => event.seq)).toEqual(events.map((_, i) => i + 1));
      expect(events.filter((event) => TERMINAL.has(event.event))).toHaveLength(1);
      return;
    }
    case 'status':
      expect(reply.backends).toBeTypeOf('object');
      return;
    case 'pong':
      return;
  }
}

/** The connection and the server still work: `ping` → `pong`, and a good chat gets its answer. */
async function expectStillServing(client: TestClient): Promise<void> {
  const from = client.frames.length;
  client.send({ type: 'ping' });
  expect((await replyAfter(client, from)).type).toBe('pong');
  const { jobId } = await client.chat('still there?', { mode: 'daily' });
  knownJobId = jobId;
  const events = await client.finished(jobId, REPLY_MS);
  expect(events.at(-1)?.event).toBe('done');
  expect(client.answer(jobId)).toBe('Hello world');
  expect(errorLines.splice(0)).toEqual([]);
}

/** Stands for the id of a job that exists and is the caller's (the last good chat's). */
const KNOWN_JOB = '$known-job$';
let knownJobId = 'no-job-yet';

/**
 * One run: a fresh connection, the frame, its reply, the connection and server still serving. The one
 * frame that gets no reply is a `cancel` of a job that exists (already finished: no effect, no error).
 */
async function sendAndCheck(text: string): Promise<void> {
  const frame = text.replaceAll(KNOWN_JOB, knownJobId);
  const client = await TestClient.connect(gateway.wsUrl);
  try {
    client.send(frame);
    if (!cancelsKnownJob(frame)) {
      const reply = await client.waitFor((f) => REPLY_TYPES.has(f.type) || f.type === 'event', REPLY_MS, 0);
      if (reply.type === 'event') await expectReplay(client, reply, frame);
      else await expectValidReply(client, reply);
    }
    await expectStillServing(client);
  } finally {
    client.close();
  }
}

function cancelsKnownJob(frame: string): boolean {
  try {
    const parsed = clientFrameSchema.safeParse(JSON.parse(frame));
    return parsed.success && parsed.data.type === 'cancel' && parsed.data.jobId === knownJobId;
  } catch {
    return false;
  }
}

/** A `subscribe` to the known job: its events after `afterSeq`, in order, up to the terminal one. */
async function expectReplay(client: TestClient, first: Frame, frame: string): Promise<void> {
  const parsed = clientFrameSchema.parse(JSON.parse(frame));
  expect(parsed.type).toBe('subscribe');
  const afterSeq = parsed.type === 'subscribe' ? (parsed.afterSeq ?? 0) : 0;
  expect(first.jobId).toBe(knownJobId);
  const events = await client.finished(knownJobId, REPLY_MS);
  expect(events.map((event) => event.seq)).toEqual(events.map((_, i) => afterSeq + 1 + i));
}

/** JSON shaped like the protocol's client frames: each field right, wrong-typed, huge, NUL or missing, plus extra keys. */
const protocolShaped = fc
  .record(
    {
      type: fc.oneof({ weight: 4, arbitrary: fc.constantFrom('chat', 'cancel', 'subscribe', 'status', 'ping') }, { weight: 1, arbitrary: awkwardValue }),
      text: fc.oneof(fc.constantFrom('hello', 'x'), awkwardValue),
      conversationId: awkwardValue,
      mode: fc.oneof(fc.constantFrom('auto', 'daily', 'deep', 'toString', '__proto__'), awkwardValue),
      clientMsgId: awkwardValue,
      jobId: fc.oneof(fc.constant(KNOWN_JOB), awkwardValue),
      afterSeq: fc.oneof(fc.constantFrom(0, 1, 2, 5, 2_147_483_647, 2_147_483_648, -1, 0.5), awkwardValue),
    },
    { requiredKeys: ['type'] },
  )
  .chain((frame) =>
    fc.option(fc.dictionary(fc.string({ maxLength: 10 }), awkwardValue, { minKeys: 1, maxKeys: 2 }), { freq: 4 }).map((extra) => ({ ...(extra ?? {}), ...frame })),
  );

/** Frames that are valid but for at most one field, so the accepted paths run too (chats, subscribes, cancels). */
const nearValid = fc.oneof(
  fc.record(
    {
      type: fc.constant('chat'),
      text: fc.oneof(fc.constantFrom('hello', '안녕하세요', 'what is on my calendar today?'), awkwardString.filter((text) => text.length > 0 && text.length <= 8000)),
      mode: fc.constantFrom('auto', 'daily', 'deep'),
      clientMsgId: fc.oneof(fc.string({ minLength: 1, maxLength: 20 }), awkwardString),
    },
    { requiredKeys: ['type', 'text'] },
  ),
  fc.record({ type: fc.constantFrom('subscribe', 'cancel'), jobId: fc.oneof(fc.constant(KNOWN_JOB), awkwardString) }),
  fc.record({ type: fc.constant('subscribe'), jobId: fc.constant(KNOWN_JOB), afterSeq: fc.oneof(fc.nat({ max: 8 }), awkwardValue) }),
);

const STRINGS: FuzzBudget = { seed: 1411, numRuns: 100, runMs: 15_000, totalMs: 40_000 };
const JSON_VALUES: FuzzBudget = { seed: 1412, numRuns: 100, runMs: 15_000, totalMs: 40_000 };
const SHAPED: FuzzBudget = { seed: 1413, numRuns: 300, runMs: 15_000, totalMs: 60_000 };
const BINARY: FuzzBudget = { seed: 1414, numRuns: 40, runMs: 15_000, totalMs: 30_000 };
const BAD_UTF8: FuzzBudget = { seed: 1415, numRuns: 60, runMs: 15_000, totalMs: 30_000 };

describe('fuzz: WebSocket frames against a real gateway', () => {
  it(`an arbitrary text frame gets a contract error or a valid reply, and the connection keeps serving (${runsOf(STRINGS)})`, async () => {
    await fc.assert(fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 300 }), sendAndCheck), fuzzParameters(STRINGS));
  });

  it(`arbitrary JSON gets a contract error or a valid reply, and the connection keeps serving (${runsOf(JSON_VALUES)})`, async () => {
    await fc.assert(fc.asyncProperty(fc.json({ maxDepth: 4 }), sendAndCheck), fuzzParameters(JSON_VALUES));
  });

  it(`protocol-shaped frames with wrong types, extra keys, huge values, NUL and lone surrogates get a contract error or a valid reply (${runsOf(SHAPED)})`, async () => {
    await fc.assert(fc.asyncProperty(fc.oneof(protocolShaped, nearValid), (frame) => sendAndCheck(JSON.stringify(frame))), fuzzParameters(SHAPED));
  });

  it(`a binary frame (any bytes, broken UTF-8 too) gets bad_request, and the connection keeps serving (${runsOf(BINARY)})`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (bytes) => {
        const client = await TestClient.connect(gateway.wsUrl);
        try {
          client.socket.send(bytes, { binary: true });
          const reply = await replyAfter(client, 0);
          expectContractError(reply);
          expect(reply.code).toBe('bad_request');
          await expectStillServing(client);
        } finally {
          client.close();
        }
      }),
      fuzzParameters(BINARY),
    );
  });

  it(`a text frame of arbitrary bytes gets a reply when it is UTF-8, else the protocol's close 1007, and the server keeps serving (${runsOf(BAD_UTF8)})`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), async (bytes) => {
        const valid = isUtf8(bytes);
        const socket = new WebSocket(gateway.wsUrl);
        await new Promise<void>((resolve, reject) => {
          socket.once('open', () => resolve());
          socket.once('error', reject);
        });
        const frames: Frame[] = [];
        socket.on('message', (data) => frames.push(JSON.parse(String(data)) as Frame));
        // Swallowed: the server may close the connection under us, which is what is checked below.
        socket.on('error', () => undefined);
        const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
        // `binary: false` sends the bytes as they are in a text frame (RFC 6455 says text is UTF-8).
        socket.send(bytes, { binary: false });
        if (valid) {
          socket.send(JSON.stringify({ type: 'ping' }));
          await waitUntil(() => frames.some((frame) => frame.type === 'pong'));
          const reply = frames.find((frame) => REPLY_TYPES.has(frame.type));
          if (reply?.type === 'error') expectContractError(reply);
          socket.close();
        } else {
          // RFC 6455 §8.1: invalid UTF-8 in a text frame fails the connection with 1007.
          expect(await closed).toBe(1007);
        }
        socket.terminate();
        // Either way the server goes on serving new connections.
        const client = await TestClient.connect(gateway.wsUrl);
        try {
          await expectStillServing(client);
        } finally {
          client.close();
        }
      }),
      fuzzParameters(BAD_UTF8),
    );
  });
});

function isUtf8(bytes: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + REPLY_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${REPLY_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
