/**
 * Issue 9: a 10 MB answer replays over one connection without a reconnect. The whole gateway (runtime,
 * embedded database, backend actors, WebSocket) over a fake model server that streams 10 MiB; one client
 * reads it live, a second subscribes once it has ended and gets every event from the journal, paced by
 * its own reading, over the one connection it opened.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { startTestGateway, TestClient, type TestGateway } from './helpers/gateway.js';

const KIB = 1024;
/** 160 pieces of 64 KiB: 10 MiB, each piece recognisable by its index. */
const PIECES = Array.from({ length: 160 }, (_, i) => `<${i}>`.padEnd(64 * KIB, String.fromCharCode(97 + (i % 26))));
const ANSWER = PIECES.join('');

let small: FakeBackend;
let large: FakeBackend;
let gateway: TestGateway;
const clients: TestClient[] = [];

beforeAll(async () => {
  small = await startFakeBackend();
  large = await startFakeBackend();
  large.setDefault({ content: PIECES });
  gateway = await startTestGateway({
    classifier: small,
    reasoner: large,
    config: { limits: { answerChars: 11 * 1024 * 1024 } },
  });
}, 60_000);

afterAll(async () => {
  for (const client of clients) client.close();
  await gateway?.close();
  await small?.close();
  await large?.close();
});

async function connect(): Promise<TestClient> {
  const client = await TestClient.connect(gateway.wsUrl);
  clients.push(client);
  return client;
}

describe('a 10 MB answer', () => {
  it('reaches a live reader whole, then replays identically over one connection', { timeout: 120_000 }, async () => {
    const live = await connect();
    const { jobId } = await live.chat('tell me everything', { mode: 'deep' });
    const seen = await live.finished(jobId, 60_000);
    expect(seen.at(-1)?.event).toBe('done');
    expect(live.answer(jobId)).toBe(ANSWER);

    const late = await connect();
    let closes = 0;
    late.socket.on('close', () => closes++);
    late.send({ type: 'subscribe', jobId });
    const replayed = await late.finished(jobId, 60_000);
    expect(replayed).toEqual(seen);
    expect(replayed.map((e) => e.seq)).toEqual(Array.from({ length: replayed.length }, (_, i) => i + 1));
    expect(late.answer(jobId)).toBe(ANSWER);
    expect(late.frames.filter((frame) => frame.type === 'error')).toEqual([]);
    expect(late.socket.readyState).toBe(WebSocket.OPEN);
    expect(closes).toBe(0);
    // The same connection still serves.
    const from = late.frames.length;
    late.send({ type: 'ping' });
    await late.waitFor((frame) => frame.type === 'pong', 5_000, from);
  });
});
