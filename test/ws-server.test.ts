import { connect } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SubmitRejected } from '../src/runtime/runtime.js';
import { ownerId } from '../src/transport/owner-id.js';
import type { EventFrame, ServerFrame } from '../src/transport/ws-frames.js';
import { capturingLog, start, stopAll, TestClient, until, upgradeStatus } from './helpers/ws-harness.js';

afterEach(stopAll);

describe('WebSocket chat', () => {
  it('sends accepted, then every event of the job once, seq 1..n, the terminal one last', async () => {
    const { url } = await start();
    const client = await TestClient.open(url);
    client.send({ type: 'chat', text: 'hello', clientMsgId: 'm-1' });
    const accepted = await client.next();
    expect(accepted).toEqual({ type: 'accepted', jobId: 'job-1', conversationId: 'conv-1', clientMsgId: 'm-1' });
    const events = await client.eventsUntilTerminal('job-1');
    expect(events.map((e) => [e.seq, e.event])).toEqual([
      [1, 'ack'],
      [2, 'result'],
      [3, 'result'],
      [4, 'done'],
    ]);
    expect(events[1]).toMatchObject({ type: 'event', jobId: 'job-1', data: { content: 'Hel' } });
    expect(Date.parse(events[0]?.at ?? '')).not.toBeNaN();
    await client.expectAlive();
  });

  it('passes text, conversation, mode and owner to the runtime; no clientMsgId, none echoed', async () => {
    const { url, runtime } = await start();
    const client = await TestClient.open(url);
    client.send({ type: 'chat', text: 'hi', conversationId: 'c-7', mode: 'daily' });
    expect(await client.next()).toEqual({ type: 'accepted', jobId: 'job-1', conversationId: 'c-7' });
    expect(runtime.submitted[0]).toMatchObject({ text: 'hi', source: 'ws', conversationId: 'c-7', mode: 'daily', owner: 'anonymous' });
  });

  it('maps runtime refusals to the contract codes', async () => {
    const { url, runtime } = await start();
    const client = await TestClient.open(url);
    const cases: Array<[SubmitRejected, string, RegExp]> = [
      [new SubmitRejected('unknown_mode', 'x'), 'bad_request', /daily/],
      [new SubmitRejected('shutting_down', 'x'), 'bad_request', /shutting down/],
      [new SubmitRejected('too_large', 'conversation too long'), 'too_large', /conversation too long/],
      [new SubmitRejected('bad_request', 'empty message'), 'bad_request', /empty message/],
      [new SubmitRejected('rate_limited', 'too many unanswered messages'), 'rate_limited', /too many unanswered/],
    ];
    for (const [rejection, code, message] of cases) {
      runtime.rejectWith = rejection;
      client.send({ type: 'chat', text: 'hi', mode: 'nope' });
      const frame = await client.next();
      expect(frame).toMatchObject({ type: 'error', code });
      expect(frame.type === 'error' && frame.message).toMatch(message);
    }
    runtime.rejectWith = null;
    await client.expectAlive();
  });

  it('answers status and ping', async () => {
    const { url } = await start();
    const client = await TestClient.open(url);
    client.send({ type: 'status' });
    expect(await client.next()).toEqual({ type: 'status', backends: {}, jobs: { active: 0, pending: 0 } });
    await client.expectAlive();
  });
});

describe('WebSocket bad frames', () => {
  const bad: Array<[string, unknown, string]> = [
    ['not JSON', '{"type":', 'bad_request'],
    ['a JSON array', '[1,2]', 'bad_request'],
    ['wrong shape', { type: 'chat', text: 42 }, 'bad_request'],
    ['a missing field', { type: 'cancel' }, 'bad_request'],
    ['an unknown key', { type: 'subscribe', jobId: 'j', afterseq: 3 }, 'bad_request'],
    ['a negative afterSeq', { type: 'subscribe', jobId: 'j', afterSeq: -1 }, 'bad_request'],
    ['an afterSeq beyond PostgreSQL integer', { type: 'subscribe', jobId: 'j', afterSeq: 2_147_483_648 }, 'bad_request'],
    ['an afterSeq beyond any integer', { type: 'subscribe', jobId: 'j', afterSeq: 1e300 }, 'bad_request'],
    ['a fractional afterSeq', { type: 'subscribe', jobId: 'j', afterSeq: 1.5 }, 'bad_request'],
    ['U+0000 in a jobId to cancel', { type: 'cancel', jobId: 'job\u0000-1' }, 'bad_request'],
    ['U+0000 in a jobId to subscribe', { type: 'subscribe', jobId: '\u0000' }, 'bad_request'],
    ['U+0000 in a conversationId', { type: 'chat', text: 'hi', conversationId: 'c\u0000' }, 'bad_request'],
    ['U+0000 in a clientMsgId', { type: 'chat', text: 'hi', clientMsgId: 'm\u0000' }, 'bad_request'],
    ['subscribe at the largest afterSeq to an unknown job', { type: 'subscribe', jobId: 'nope', afterSeq: 2_147_483_647 }, 'unknown_job'],
    ['an id over 128 chars', { type: 'cancel', jobId: 'j'.repeat(129) }, 'bad_request'],
    ['an unknown type', { type: 'launch' }, 'bad_request'],
    ['a text over messageChars', { type: 'chat', text: 'x'.repeat(101) }, 'too_large'],
    ['a frame over 64 KiB', { type: 'chat', text: 'x', clientMsgId: 'y'.repeat(70 * 1024) }, 'too_large'],
    ['cancel of an unknown job', { type: 'cancel', jobId: 'nope' }, 'unknown_job'],
    ['subscribe to an unknown job', { type: 'subscribe', jobId: 'nope' }, 'unknown_job'],
  ];
  it.each(bad)('answers %s with the right code and keeps serving', async (_name, frame, code) => {
    const { url } = await start();
    const client = await TestClient.open(url);
    client.send(frame);
    const reply = await client.next();
    expect(reply).toMatchObject({ type: 'error', code });
    expect(reply.type === 'error' && reply.message.length).toBeGreaterThan(0);
    await client.expectAlive();
  });

  it('refuses binary frames', async () => {
    const { url } = await start();
    const client = await TestClient.open(url);
    client.ws.send(Buffer.from('{"type":"ping"}'), { binary: true });
    expect(await client.next()).toMatchObject({ type: 'error', code: 'bad_request' });
    await client.expectAlive();
  });

  it('rate limits a connection that sends too many frames, then serves it again', async () => {
    const { url } = await start({ maxFramesPerSecond: 5 });
    const client = await TestClient.open(url);
    for (let i = 0; i < 20; i++) client.send({ type: 'ping' });
    const replies: ServerFrame[] = [];
    for (let i = 0; i < 20; i++) replies.push(await client.next());
    const limited = replies.filter((r) => r.type === 'error' && r.code === 'rate_limited').length;
    expect(replies.filter((r) => r.type === 'pong').length).toBeGreaterThanOrEqual(5);
    expect(limited).toBeGreaterThanOrEqual(10);
    // The bucket refills at 5 tokens a second: a ping is answered again within a second or so.
    const deadline = Date.now() + 3_000;
    for (;;) {
      client.send({ type: 'ping' });
      const reply = await client.next();
      if (reply.type === 'pong') break;
      expect(reply).toMatchObject({ type: 'error', code: 'rate_limited' });
      if (Date.now() > deadline) throw new Error('never served again');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  it('takes the frame rate from limits.framesPerSecond; the option overrides it', async () => {
    const burst = async (url: string): Promise<number> => {
      const client = await TestClient.open(url);
      for (let i = 0; i < 12; i++) client.send({ type: 'ping' });
      let pongs = 0;
      for (let i = 0; i < 12; i++) if ((await client.next()).type === 'pong') pongs++;
      return pongs;
    };
    const fromConfig = await start({ limits: { framesPerSecond: 3 } });
    // A burst of 12 within a few ms: the bucket's 3, perhaps one refilled.
    expect(await burst(fromConfig.url)).toBeLessThanOrEqual(4);
    const overridden = await start({ limits: { framesPerSecond: 3 }, maxFramesPerSecond: 100 });
    expect(await burst(overridden.url)).toBe(12);
  });
});

describe('WebSocket cancel and subscribe', () => {
  it('cancel ends a running job with cancelled; cancelling a finished job is no error', async () => {
    const { url } = await start();
    const client = await TestClient.open(url);
    client.send({ type: 'chat', text: 'manual' });
    const accepted = await client.next();
    if (accepted.type !== 'accepted') throw new Error(`expected accepted, got ${accepted.type}`);
    client.send({ type: 'cancel', jobId: accepted.jobId });
    const events = await client.eventsUntilTerminal(accepted.jobId);
    expect(events.map((e) => e.event)).toEqual(['cancelled']);
    client.send({ type: 'cancel', jobId: accepted.jobId });
    await client.expectAlive();
  });

  it('replays events after afterSeq, then live ones until the terminal event', async () => {
    const { url, runtime } = await start({ tokens: ['token-aaaaaaaa'] });
    const headers = { authorization: 'Bearer token-aaaaaaaa' };
    const first = await TestClient.open(url, headers);
    first.send({ type: 'chat', text: 'manual' });
    const accepted = await first.next();
    if (accepted.type !== 'accepted') throw new Error('expected accepted');
    runtime.emit(accepted.jobId, 'ack');
    runtime.emit(accepted.jobId, 'processing', { message: 'thinking' });
    runtime.emit(accepted.jobId, 'result', { content: 'a' });

    const second = await TestClient.open(url, headers);
    second.send({ type: 'subscribe', jobId: accepted.jobId, afterSeq: 1 });
    expect((await second.next()) as EventFrame).toMatchObject({ seq: 2, event: 'processing' });
    expect((await second.next()) as EventFrame).toMatchObject({ seq: 3, event: 'result' });
    runtime.emit(accepted.jobId, 'result', { content: 'b' });
    runtime.emit(accepted.jobId, 'done');
    const rest = await second.eventsUntilTerminal(accepted.jobId);
    expect(rest.map((e) => e.seq)).toEqual([4, 5]);
    expect((await first.eventsUntilTerminal(accepted.jobId)).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);

    // A finished job replays only what is after afterSeq; subscribing again is not doubled.
    second.send({ type: 'subscribe', jobId: accepted.jobId, afterSeq: 3 });
    expect((await second.eventsUntilTerminal(accepted.jobId)).map((e) => e.seq)).toEqual([4, 5]);
    await second.expectAlive();
  });

  it("does not let one owner see another's jobs", async () => {
    const { url } = await start({ tokens: ['token-aaaaaaaa', 'token-bbbbbbbb'] });
    const alice = await TestClient.open(url, { authorization: 'Bearer token-aaaaaaaa' });
    const bob = await TestClient.open(`${url}?token=token-bbbbbbbb`);
    alice.send({ type: 'chat', text: 'manual' });
    const accepted = await alice.next();
    if (accepted.type !== 'accepted') throw new Error('expected accepted');
    bob.send({ type: 'subscribe', jobId: accepted.jobId });
    expect(await bob.next()).toMatchObject({ type: 'error', code: 'unknown_job' });
    bob.send({ type: 'cancel', jobId: accepted.jobId });
    expect(await bob.next()).toMatchObject({ type: 'error', code: 'unknown_job' });
  });

  it('removes subscriptions when the socket closes', async () => {
    const { url, runtime, attached } = await start();
    const client = await TestClient.open(url);
    client.send({ type: 'chat', text: 'manual' });
    await client.next();
    expect(runtime.listenerCount('job-1')).toBe(1);
    client.ws.close();
    await until(() => attached.clientCount() === 0 && runtime.listenerCount('job-1') === 0);
  });
});

describe('WebSocket auth', () => {
  it('refuses upgrades without or with a wrong token (401), accepts the right one by header or query', async () => {
    const { url, runtime } = await start({ tokens: ['token-aaaaaaaa'] });
    expect(await upgradeStatus(url)).toBe(401);
    expect(await upgradeStatus(url, { authorization: 'Bearer token-wrong!!' })).toBe(401);
    expect(await upgradeStatus(url, { authorization: 'Bearer token-aaaaaaa' })).toBe(401);
    expect(await upgradeStatus(`${url}?token=token-wrong!!`)).toBe(401);
    expect(await upgradeStatus(`${url}?token=`)).toBe(401);
    expect(await upgradeStatus(url, { authorization: 'Bearer token-aaaaaaaa' })).toBe(101);
    expect(await upgradeStatus(`${url}?token=token-aaaaaaaa`)).toBe(101);

    const client = await TestClient.open(`${url}?token=token-aaaaaaaa`);
    client.send({ type: 'chat', text: 'hi' });
    await client.next();
    // The owner is an id derived from the token, never the token itself.
    expect(runtime.submitted[0]?.owner).toBe(ownerId('token-aaaaaaaa'));
    expect(runtime.submitted[0]?.owner).toMatch(/^token:[0-9a-f]{16}$/);
  });

  it('answers other paths with 404', async () => {
    const { url } = await start();
    expect(await upgradeStatus(url.replace('/ws', '/other'))).toBe(404);
    expect(await upgradeStatus(url.replace('/ws', '/ws/x'))).toBe(404);
  });

  it('without tokens, refuses browser origins that are not this machine (403)', async () => {
    const { url } = await start();
    const port = new URL(url).port;
    expect(await upgradeStatus(url, { origin: 'https://evil.example' })).toBe(403);
    expect(await upgradeStatus(url, { origin: `http://127.0.0.1:${port}` })).toBe(101);
    expect(await upgradeStatus(url, { origin: `http://localhost:${port}` })).toBe(101);
  });

  it('keeps message bodies and tokens out of the logs', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'trace' }, { write: (line: string) => void lines.push(line) });
    const { url } = await start({ tokens: ['token-secret-1'], log });
    const client = await TestClient.open(url, { authorization: 'Bearer token-secret-1' });
    client.send({ type: 'chat', text: 'my secret diary', clientMsgId: 'm' });
    await client.eventsUntilTerminal('job-1');
    client.send({ type: 'chat', text: 'secret '.repeat(30) });
    expect(await client.next()).toMatchObject({ code: 'too_large' });
    expect(lines.length).toBeGreaterThan(3);
    const all = lines.join('\n');
    expect(all).not.toMatch(/secret|Hel|diary/);
    expect(all).toMatch(/job-1/);
  });
});

describe('WebSocket lifecycle', () => {
  it('terminates peers that stop answering protocol pings', async () => {
    const { url, attached } = await start({ heartbeatMs: 100 });
    const dead = await TestClient.open(url);
    const live = await TestClient.open(url);
    dead.socket.pause();
    await until(() => attached.clientCount() === 1, 3_000);
    await live.expectAlive();
  });

  it('close() closes every client with 1001 and refuses new upgrades', async () => {
    const { url, attached } = await start();
    const clients = await Promise.all([TestClient.open(url), TestClient.open(url)]);
    clients[0]?.send({ type: 'chat', text: 'manual' });
    await clients[0]?.next();
    await attached.close();
    expect(attached.clientCount()).toBe(0);
    for (const client of clients) expect((await client.closed).code).toBe(1001);
    // With the upgrade listener gone the HTTP server answers the request itself (404 here) or drops it.
    expect(await upgradeStatus(url).catch(() => 0)).not.toBe(101);
  });
});

describe('WebSocket runtime refusals of subscribe and cancel', () => {
  it('answers a refused subscribe with its code and message and holds nothing for it', async () => {
    const { url, runtime } = await start({ maxFramesPerSecond: 100_000 });
    const client = await TestClient.open(url);
    client.send({ type: 'chat', text: 'hello' });
    const accepted = await client.next();
    if (accepted.type !== 'accepted') throw new Error('expected accepted');
    expect(await client.eventsUntilTerminal(accepted.jobId)).toHaveLength(4);

    // More refusals than MAX_SUBSCRIPTIONS (256): none may stay counted against the connection.
    for (let i = 0; i < 300; i++) {
      client.send({ type: 'subscribe', jobId: accepted.jobId, afterSeq: 5 + i });
      const reply = await client.next();
      expect(reply).toMatchObject({ type: 'error', code: 'bad_request' });
      expect(reply.type === 'error' && reply.message).toMatch(/past the end of the job/);
    }
    client.send({ type: 'chat', text: 'manual' });
    const next = await client.next();
    expect(next).toMatchObject({ type: 'accepted' });
    if (next.type !== 'accepted') throw new Error('expected accepted');
    expect(runtime.listenerCount(next.jobId)).toBe(1);
    // The ended job still replays from a valid afterSeq.
    client.send({ type: 'subscribe', jobId: accepted.jobId, afterSeq: 2 });
    expect((await client.eventsUntilTerminal(accepted.jobId)).map((e) => e.seq)).toEqual([3, 4]);
  });

  it('answers a refused cancel with its code and message', async () => {
    const { url, runtime } = await start();
    const client = await TestClient.open(url);
    client.send({ type: 'chat', text: 'manual' });
    const accepted = await client.next();
    if (accepted.type !== 'accepted') throw new Error('expected accepted');
    runtime.cancelRejectWith = new SubmitRejected('bad_request', 'that job cannot be cancelled now');
    client.send({ type: 'cancel', jobId: accepted.jobId });
    expect(await client.next()).toEqual({ type: 'error', code: 'bad_request', message: 'that job cannot be cancelled now' });
    runtime.cancelRejectWith = new SubmitRejected('shutting_down', 'stopping');
    client.send({ type: 'cancel', jobId: accepted.jobId });
    expect(await client.next()).toMatchObject({ type: 'error', code: 'bad_request', message: expect.stringMatching(/shutting down/) });
    await client.expectAlive();
  });
});

describe('WebSocket connections per owner', () => {
  it('refuses the connection over limits.connectionsPerOwner with rate_limited and 1013; others are unaffected; closing frees a place', async () => {
    const alice = { authorization: 'Bearer token-aaaaaaaa' };
    const bob = { authorization: 'Bearer token-bbbbbbbb' };
    const { url, attached } = await start({ tokens: ['token-aaaaaaaa', 'token-bbbbbbbb'], limits: { connectionsPerOwner: 2 } });
    const first = await TestClient.open(url, alice);
    await TestClient.open(url, alice);

    const third = await TestClient.open(url, alice);
    const refusal = await third.next();
    expect(refusal).toMatchObject({ type: 'error', code: 'rate_limited' });
    expect(refusal.type === 'error' && refusal.message).toMatch(/too many connections/);
    expect(await third.closed).toEqual({ code: 1013, reason: 'too many connections' });

    // Another owner has places of its own.
    const bobs = [await TestClient.open(url, bob), await TestClient.open(url, bob)];
    for (const client of bobs) await client.expectAlive();
    await first.expectAlive();

    first.ws.close();
    await first.closed;
    await until(() => attached.clientCount() === 3);
    const again = await TestClient.open(url, alice);
    await again.expectAlive();
  });

  it('counts every anonymous connection as one owner, 64 by default', async () => {
    const { url, attached } = await start();
    const clients = await Promise.all(Array.from({ length: 64 }, () => TestClient.open(url)));
    expect(attached.clientCount()).toBe(64);
    const over = await TestClient.open(url);
    expect(await over.next()).toMatchObject({ type: 'error', code: 'rate_limited' });
    expect((await over.closed).code).toBe(1013);
    await clients[63]?.expectAlive();
  });
});

describe('WebSocket Host check without auth (DNS rebinding)', () => {
  it('refuses an upgrade whose Host is not this server (403); accepts loopback names and server.host, with or without a port', async () => {
    const { url } = await start();
    const port = new URL(url).port;
    expect(await upgradeStatus(url, { host: 'evil.example' })).toBe(403);
    expect(await upgradeStatus(url, { host: `evil.example:${port}` })).toBe(403);
    expect(await upgradeStatus(url, { host: `127.0.0.2:${port}` })).toBe(403);
    expect(await upgradeStatus(url, { host: `localhost.evil.example:${port}` })).toBe(403);
    for (const host of ['localhost', `localhost:${port}`, 'LOCALHOST', '127.0.0.1', `127.0.0.1:${port}`, '[::1]', `[::1]:${port}`, 'localhost:9000']) {
      expect(await upgradeStatus(url, { host }), host).toBe(101);
    }
  });

  it('accepts the configured server.host', async () => {
    const { url } = await start({ server: { host: '127.0.0.5' } });
    expect(await upgradeStatus(url, { host: '127.0.0.5:8787' })).toBe(101);
    expect(await upgradeStatus(url, { host: '127.0.0.6:8787' })).toBe(403);
  });

  it('does not check Host when auth tokens are configured', async () => {
    const { url } = await start({ tokens: ['token-aaaaaaaa'] });
    expect(await upgradeStatus(url, { host: 'gateway.lan.example', authorization: 'Bearer token-aaaaaaaa' })).toBe(101);
    expect(await upgradeStatus(url, { host: 'gateway.lan.example' })).toBe(401);
  });
});

describe('WebSocket refused upgrades in the log', () => {
  /** `count` upgrades refused with 401 (no token), `parallel` at a time, over raw sockets. */
  async function refusedUpgrades(url: string, count: number, parallel = 50): Promise<number[]> {
    const { hostname, port } = new URL(url);
    const statuses: number[] = [];
    let started = 0;
    const one = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const socket = connect(Number(port), hostname);
        let reply = '';
        socket.on('data', (chunk) => (reply += chunk.toString('latin1')));
        socket.on('error', reject);
        socket.on('close', () => {
          statuses.push(Number(/^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1] ?? 0));
          resolve();
        });
        socket.write(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`);
      });
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        while (started < count) {
          started++;
          await one();
        }
      }),
    );
    return statuses;
  }

  it('logs the first refusal of an address, counts the rest, and logs the count with its next line after a minute', async () => {
    let clock = 0;
    const { log, lines } = capturingLog('info');
    const { url } = await start({ tokens: ['token-aaaaaaaa'], log, now: () => clock });
    const refusedLines = () => lines.filter((line) => String(line.msg).startsWith('websocket upgrade refused'));

    const statuses = await refusedUpgrades(url, 5000);
    expect(statuses.filter((status) => status === 401)).toHaveLength(5000);
    expect(refusedLines()).toEqual([expect.objectContaining({ remote: '127.0.0.1', status: 401, reason: 'unauthorized' })]);

    clock += 59_999;
    await refusedUpgrades(url, 1);
    expect(refusedLines()).toHaveLength(1);

    clock += 1;
    await refusedUpgrades(url, 1);
    expect(refusedLines()).toEqual([
      expect.objectContaining({ status: 401 }),
      expect.objectContaining({ remote: '127.0.0.1', refused: 5000, lastStatus: 401, msg: expect.stringMatching(/repeated/) }),
      expect.objectContaining({ remote: '127.0.0.1', status: 401, reason: 'unauthorized' }),
    ]);
  });

  it('logs refusals over the connection cap the same way', async () => {
    let clock = 0;
    const { log, lines } = capturingLog('info');
    const { url } = await start({ log, now: () => clock, limits: { connectionsPerOwner: 1 } });
    await TestClient.open(url);
    for (let i = 0; i < 20; i++) {
      const over = await TestClient.open(url);
      expect((await over.closed).code).toBe(1013);
    }
    const refused = lines.filter((line) => String(line.msg).startsWith('websocket upgrade refused'));
    expect(refused).toEqual([expect.objectContaining({ status: 1013, reason: 'too_many_connections' })]);
  });
});
