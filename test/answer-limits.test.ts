/**
 * Answers of bounded size (issue 9, "Must show"): a model answer over `limits.answerChars` ends with
 * `error` `answer_too_long`, streamed or not, without the rest of the body being read, so a 20 MB answer
 * costs the gateway far less memory than its size; a long answer within the limit reaches the client as
 * `result` events of at most 16 KiB, and a second connection's `subscribe` replays all of it over one
 * connection.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOpenAIClient } from '../src/actors/inference/openai-client.js';
import { startFakeBackend, type FakeBackend, type FakeReply } from './fakes/fake-openai-backend.js';
import { childConfig, startChildGateway, type ChildGateway } from './helpers/child-gateway.js';
import { prepareGatewayDatabase, type GatewayDatabase } from './helpers/gateway-database.js';
import { classifiedText } from './helpers/scripted-models.js';
import { JobClient, MIB, processRss, resetPeakRss, startTunedGateway, type TunedGateway } from './helpers/tuned-gateway.js';

const KIB = 1024;
const messages = (JSON.parse(readFileSync(new URL('../prompts/messages.json', import.meta.url), 'utf8')) as { en: { errors: Record<string, string> } }).en;

/** `total` characters in pieces of `size`, each recognisable by its index (so order and loss show). */
function bigAnswer(total: number, size: number): string[] {
  const pieces: string[] = [];
  for (let i = 0, left = total; left > 0; i++, left -= size) {
    const head = `[${i}]`;
    const length = Math.min(size, left);
    pieces.push(head + String.fromCharCode(97 + (i % 26)).repeat(Math.max(0, length - head.length)));
  }
  return pieces;
}

const TWENTY_MB = bigAnswer(20 * 1000 * 1000, 64 * KIB);

/**
 * A model server whose answer never ends: after the JSON's (or the event stream's) opening it writes
 * 64 KiB of content at a time, as fast as the client reads, for ever. A client that reads a body to its
 * end never returns; one that stops at its limit fails at once. Counts what it managed to send.
 */
async function startEndlessServer(): Promise<{ url: string; sent: () => number; left: Promise<void>; close: () => Promise<void> }> {
  let sent = 0;
  let leave: () => void = () => undefined;
  const left = new Promise<void>((resolve) => (leave = resolve));
  const piece = 'a'.repeat(64 * KIB);
  const server = createServer((req, res) => {
    const body: Buffer[] = [];
    req.on('data', (chunk: Buffer) => body.push(chunk));
    req.on('end', () => {
      let streaming = false;
      try {
        streaming = (JSON.parse(Buffer.concat(body).toString('utf8')) as { stream?: boolean }).stream === true;
      } catch {
        // Not a chat request: answered as JSON all the same.
      }
      res.on('close', () => leave());
      res.writeHead(200, { 'content-type': streaming ? 'text/event-stream' : 'application/json' });
      const chunk = streaming ? `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: piece }, finish_reason: null }] })}\n\n` : piece;
      if (!streaming) res.write('{"choices":[{"index":0,"message":{"role":"assistant","content":"');
      const pump = (): void => {
        while (!res.destroyed) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      pump();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    sent: () => sent,
    left,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('a model answer over limits.answerChars, directly at the client', () => {
  let fake: FakeBackend;

  beforeAll(async () => {
    fake = await startFakeBackend({ defaultReply: { content: TWENTY_MB } });
  });

  afterAll(async () => {
    await fake?.close();
  });

  for (const kind of ['complete', 'stream'] as const) {
    const call = (client: ReturnType<typeof createOpenAIClient>, onContent: (text: string) => void) =>
      kind === 'complete'
        ? client.complete({ messages: [{ role: 'user', content: 'long' }] }, AbortSignal.timeout(10_000))
        : client.stream({ messages: [{ role: 'user', content: 'long' }] }, { signal: AbortSignal.timeout(10_000), onContent });

    it(`${kind}: a 20 MB answer fails with answer_too_long`, async () => {
      const client = createOpenAIClient({ baseUrl: fake.baseUrl, model: 'fake-model', maxAnswerChars: 200_000, timeoutMs: 10_000 });
      let delivered = 0;
      await expect(call(client, (text) => (delivered += text.length))).rejects.toMatchObject({ reason: 'answer_too_long' });
      expect(delivered).toBeLessThanOrEqual(200_000);
      await client.close();
    });

    it(`${kind}: an answer that never ends fails with answer_too_long at once, the rest unread`, async () => {
      const endless = await startEndlessServer();
      const client = createOpenAIClient({ baseUrl: endless.url, model: 'fake-model', maxAnswerChars: 200_000, timeoutMs: 10_000, idleTimeoutMs: 10_000 });
      try {
        const started = performance.now();
        await expect(call(client, () => undefined)).rejects.toMatchObject({ reason: 'answer_too_long' });
        expect(performance.now() - started).toBeLessThan(2_000);
        // The client hung up; what the server got out is the limit's worth plus the sockets' buffers.
        await endless.left;
        expect(endless.sent()).toBeLessThan(16 * MIB);
      } finally {
        await client.close();
        await endless.close();
      }
    });
  }

  // One SSE event may hold a whole answer: the parser's cap on an event follows the answer limit.
  it('stream: one 5 MB event, over the limit, fails with answer_too_long', async () => {
    const client = createOpenAIClient({ baseUrl: fake.baseUrl, model: 'fake-model', maxAnswerChars: 200_000, timeoutMs: 10_000 });
    fake.enqueue({ content: ['x'.repeat(5_000_000)] });
    try {
      await expect(client.stream({ messages: [{ role: 'user', content: 'long' }] }, { signal: AbortSignal.timeout(10_000), onContent: () => undefined })).rejects.toMatchObject({
        reason: 'answer_too_long',
      });
    } finally {
      await client.close();
    }
  });

  it('stream: one 5 MB event within a raised limit arrives whole', async () => {
    const client = createOpenAIClient({ baseUrl: fake.baseUrl, model: 'fake-model', maxAnswerChars: 6_000_000, timeoutMs: 10_000 });
    fake.enqueue({ content: ['x'.repeat(5_000_000)] });
    try {
      let delivered = 0;
      const result = await client.stream({ messages: [{ role: 'user', content: 'long' }] }, { signal: AbortSignal.timeout(10_000), onContent: (text) => (delivered += text.length) });
      expect(result.content).toHaveLength(5_000_000);
      expect(delivered).toBe(5_000_000);
    } finally {
      await client.close();
    }
  });
});

describe('a 20 MB model answer through a gateway in its own process', () => {
  let small: FakeBackend;
  let large: FakeBackend;
  let dir: string;
  let database: GatewayDatabase;
  let child: ChildGateway;
  let client: JobClient;
  /** Answers `huge …` messages with 20 MB, classification and stream alike. */
  let huge = false;

  beforeAll(async () => {
    small = await startFakeBackend();
    large = await startFakeBackend({ defaultReply: { content: TWENTY_MB } });
    small.setDefault((body): FakeReply => {
      const text = classifiedText(body);
      if (huge) return { content: TWENTY_MB };
      if (text === null) return { content: ['small ', 'answer'] };
      return { content: JSON.stringify({ action: 'direct', response: `direct ${text}` }) };
    });
    dir = mkdtempSync(join(tmpdir(), 'sb-answer-limits-'));
    database = await prepareGatewayDatabase(process.env['TEST_DATABASE_URL'] ? 'postgres' : 'pglite', { name: 'answer-limits' });
    const config = childConfig(dir, small, large, {
      database: database.databaseConfig,
      modes: { daily: 'small', deep: 'large' },
      backend: { timeoutMs: 20_000, streamDeadlineMs: 30_000 },
    });
    child = await startChildGateway(dir, config);
    client = await JobClient.connect(child.wsUrl);
  }, 60_000);

  afterAll(async () => {
    client?.close();
    await child?.kill();
    await database?.dispose();
    await small?.close();
    await large?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('ends with answer_too_long, non-streamed and streamed, and the gateway grows by far less than the answer', async () => {
    const pid = child.child.pid as number;
    // Warm up: the paths are compiled and the pools are open before the idle figure is taken.
    for (let i = 0; i < 3; i++) {
      const { jobId } = await client.chat(`warm ${i}`);
      expect((await client.finished(jobId)).at(-1)?.event).toBe('done');
    }
    const idle = processRss(pid).rss;
    resetPeakRss(pid);

    // 1. The classification is 20 MB (not streamed): it is cut short and the message is answered by a
    //    stream from the classifier, which is 20 MB again: the job ends answer_too_long.
    huge = true;
    small.resetStats();
    const first = await client.chat('huge, please');
    const firstEvents = await client.finished(first.jobId, 30_000);
    expect(firstEvents.at(-1)?.event).toBe('error');
    expect(firstEvents.at(-1)?.data).toMatchObject({ reason: 'answer_too_long', message: messages.errors.answerTooLong });
    const [classification, stream] = small.chatRequests;
    expect(classification?.body?.stream ?? false).toBe(false);
    expect(stream?.body?.stream).toBe(true);
    // What was streamed before the limit is at most the limit.
    expect(client.answer(first.jobId).length).toBeLessThanOrEqual(200_000);

    // 2. A mode chat straight from the reasoner, streaming 20 MB.
    large.resetStats();
    const second = await client.chat('huge again', { mode: 'deep' });
    const secondEvents = await client.finished(second.jobId, 30_000);
    expect(secondEvents.at(-1)?.event).toBe('error');
    expect(secondEvents.at(-1)?.data.reason).toBe('answer_too_long');
    huge = false;

    // Peak RSS of the gateway's process across both jobs (Linux VmHWM, reset just before). Reading the
    // bodies whole took RSS up by ~190 MB for one 20 MB answer; the gateway reads at most ~1.3 MB of a
    // non-streamed body and 200 000 characters of a stream, so 60 MiB leaves room for its heap's own
    // swings, not for an answer.
    const { peak } = processRss(pid);
    console.info(`20 MB answers: gateway RSS idle ${Math.round(idle / MIB)} MiB, peak ${Math.round(peak / MIB)} MiB (+${Math.round((peak - idle) / MIB)} MiB)`);
    expect(peak - idle).toBeLessThan(60 * MIB);
  }, 60_000);
});

describe('a 10 MB answer within a raised limit', () => {
  const TEN_MB = bigAnswer(10 * 1000 * 1000, 64 * KIB);
  let small: FakeBackend;
  let large: FakeBackend;
  let gateway: TunedGateway;

  beforeAll(async () => {
    small = await startFakeBackend();
    large = await startFakeBackend({ defaultReply: { content: TEN_MB } });
    gateway = await startTunedGateway({ small, large, config: { limits: { answerChars: 12_000_000 } } });
  }, 30_000);

  afterAll(async () => {
    await gateway?.close();
    await small?.close();
    await large?.close();
  });

  it('arrives as result events of at most 16 KiB and replays over one connection', async () => {
    const live = await JobClient.connect(gateway.wsUrl);
    const { jobId } = await live.chat('ten megabytes, please', { mode: 'deep' });
    const events = await live.finished(jobId, 30_000);
    expect(events.at(-1)?.event).toBe('done');
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const results = events.filter((e) => e.event === 'result');
    const expected = TEN_MB.join('');
    expect(live.answer(jobId)).toBe(expected);
    expect(Math.max(...results.map((e) => String(e.data.content).length))).toBeLessThanOrEqual(16 * KIB);
    expect(results.length).toBeGreaterThanOrEqual(Math.ceil(expected.length / (16 * KIB)));

    // A second connection replays the whole job from the journal.
    const replaying = await JobClient.connect(gateway.wsUrl);
    replaying.send({ type: 'subscribe', jobId, afterSeq: 0 });
    const replayed = await replaying.finished(jobId, 30_000);
    expect(replayed.map((e) => [e.seq, e.event])).toEqual(events.map((e) => [e.seq, e.event]));
    expect(replaying.answer(jobId)).toBe(expected);
    // Paced by the client's reading (ws-server.ts), not closed as too slow (1013): the same connection
    // still answers.
    expect(replaying.closed).toBeNull();
    const from = replaying.others.length;
    replaying.send({ type: 'ping' });
    await replaying.waitForOther((frame) => frame.type === 'pong', 5_000, from);
    expect(replaying.others.filter((frame) => frame.type === 'error')).toEqual([]);

    live.close();
    replaying.close();
  }, 60_000);
});
