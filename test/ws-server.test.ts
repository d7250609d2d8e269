import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { configSchema, type Config } from '../src/config/config-schema.js';
import { isTerminal, type JobEvent, type JobEventName } from '../src/jobs/job-event.js';
import {
  SubmitRejected,
  type Accepted,
  type HealthBody,
  type Runtime,
  type StatusBody,
  type SubmitInput,
  type Unsubscribe,
} from '../src/runtime/runtime.js';
import { ownerId } from '../src/transport/owner-id.js';
import type { EventFrame, ServerFrame } from '../src/transport/ws-frames.js';
import { attachWebSocket, type AttachedWebSocket, type WebSocketOptions } from '../src/transport/ws-server.js';

type Step = { event: JobEventName; data?: Record<string, unknown> };

interface FakeJob {
  owner: string;
  events: JobEvent[];
  listeners: Set<(event: JobEvent) => void>;
  finished: boolean;
}

const DEFAULT_SCRIPT: Step[] = [
  { event: 'ack' },
  { event: 'result', data: { content: 'Hel' } },
  { event: 'result', data: { content: 'lo' } },
  { event: 'done' },
];

/**
 * A hand-written `Runtime`: `submit` creates a job and plays `script(input)` (the first event at once,
 * before `submit` resolves, the rest a moment later); `null` leaves the job to the test (`emit`).
 */
class FakeRuntime implements Runtime {
  readonly jobs = new Map<string, FakeJob>();
  readonly submitted: SubmitInput[] = [];
  rejectWith: SubmitRejected | null = null;
  script: (input: SubmitInput) => Step[] | null = (input) => (input.text === 'manual' ? null : DEFAULT_SCRIPT);
  private count = 0;

  constructor(readonly config: Config) {}

  async health(): Promise<HealthBody> {
    return { ok: true };
  }

  async submit(input: SubmitInput): Promise<Accepted> {
    if (this.rejectWith !== null) throw this.rejectWith;
    this.submitted.push(input);
    const jobId = `job-${++this.count}`;
    this.jobs.set(jobId, { owner: input.owner, events: [], listeners: new Set(), finished: false });
    const [first, ...rest] = this.script(input) ?? [];
    // Emitted before `accepted` can be sent: the server must still deliver it, after `accepted`.
    if (first !== undefined) this.emit(jobId, first.event, first.data);
    setTimeout(() => {
      for (const step of rest) this.emit(jobId, step.event, step.data);
    }, 5);
    return { jobId, conversationId: input.conversationId ?? `conv-${this.count}`, repeated: false };
  }

  emit(jobId: string, event: JobEventName, data: Record<string, unknown> = {}): void {
    const job = this.jobs.get(jobId);
    if (job === undefined || job.finished) throw new Error(`fake: ${jobId} is not running`);
    const numbered: JobEvent = { jobId, seq: job.events.length + 1, event, data, at: new Date().toISOString() };
    job.events.push(numbered);
    for (const listener of [...job.listeners]) listener(numbered);
    if (isTerminal(event)) {
      job.finished = true;
      job.listeners.clear();
    }
  }

  listenerCount(jobId: string): number {
    return this.jobs.get(jobId)?.listeners.size ?? 0;
  }

  async cancel(jobId: string, owner: string): Promise<boolean> {
    const job = this.jobs.get(jobId);
    if (job === undefined || job.owner !== owner) return false;
    if (!job.finished) this.emit(jobId, 'cancelled');
    return true;
  }

  async subscribe(
    jobId: string,
    owner: string,
    afterSeq: number,
    listener: (event: JobEvent) => void,
  ): Promise<Unsubscribe | null> {
    const job = this.jobs.get(jobId);
    if (job === undefined || job.owner !== owner) return null;
    for (const event of job.events) if (event.seq > afterSeq) listener(event);
    if (job.finished) return () => {};
    job.listeners.add(listener);
    return () => job.listeners.delete(listener);
  }

  status(): StatusBody {
    const active = [...this.jobs.values()].filter((job) => !job.finished).length;
    return { backends: {}, jobs: { active, pending: 0 } };
  }

  async start(): Promise<void> {}
  async stop(): Promise<void> {}
}

/** Every client a test opened, terminated after the test whatever happened. */
const openClients: WebSocket[] = [];

/** A real `ws` client that queues what it receives, to read in order. */
class TestClient {
  readonly frames: ServerFrame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private cursor = 0;
  private wake: (() => void) | null = null;

  private constructor(
    readonly ws: WebSocket,
    readonly socket: Socket,
  ) {
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(String(data)) as ServerFrame);
      this.wake?.();
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
  }

  static async open(url: string, headers: Record<string, string> = {}): Promise<TestClient> {
    const ws = new WebSocket(url, { headers });
    openClients.push(ws);
    // 'open' follows 'upgrade' synchronously: listen for both before awaiting either.
    const upgraded = once(ws, 'upgrade') as Promise<[IncomingMessage]>;
    const opened = once(ws, 'open');
    const [[response]] = await Promise.all([upgraded, opened]);
    return new TestClient(ws, response.socket as Socket);
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** The next frame not read yet. */
  async next(timeoutMs = 2_000): Promise<ServerFrame> {
    const deadline = Date.now() + timeoutMs;
    while (this.cursor >= this.frames.length) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
    const frame = this.frames[this.cursor++];
    if (frame === undefined) throw new Error('unreachable');
    return frame;
  }

  /** Reads frames until the terminal event of `jobId`, returning that job's events. */
  async eventsUntilTerminal(jobId: string): Promise<EventFrame[]> {
    const events: EventFrame[] = [];
    for (;;) {
      const frame = await this.next();
      if (frame.type !== 'event' || frame.jobId !== jobId) continue;
      events.push(frame);
      if (isTerminal(frame.event)) return events;
    }
  }

  /** Proves the connection still serves: a ping gets a pong. */
  async expectAlive(): Promise<void> {
    this.send({ type: 'ping' });
    expect(await this.next()).toEqual({ type: 'pong' });
  }
}

/** The HTTP status an upgrade gets (101 when it succeeds). */
async function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  const ws = new WebSocket(url, { headers });
  return new Promise<number>((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.destroy();
    });
    ws.on('open', () => {
      resolve(101);
      ws.close();
    });
    ws.on('error', reject);
  });
}

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

interface Harness {
  url: string;
  runtime: FakeRuntime;
  attached: AttachedWebSocket;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const silent = pino({ level: 'silent' });

async function start(
  options: { tokens?: string[]; log?: Logger } & Partial<Omit<WebSocketOptions, 'runtime' | 'config' | 'log'>> = {},
): Promise<Harness> {
  const { tokens = [], log = silent, ...wsOptions } = options;
  const config = configSchema.parse({ auth: { tokens }, modes: { daily: 'local' }, limits: { messageChars: 100 } });
  const runtime = new FakeRuntime(config);
  const server: Server = createServer((_req, res) => {
    res.writeHead(404).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const attached = attachWebSocket(server, { runtime, config, log, ...wsOptions });
  cleanups.push(async () => {
    await attached.close();
    for (const ws of openClients.splice(0)) ws.terminate();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const { port } = server.address() as AddressInfo;
  return { url: `ws://127.0.0.1:${port}/ws`, runtime, attached };
}

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
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await client.expectAlive();
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

describe('WebSocket flow control and lifecycle', () => {
  it('disconnects a client that stops reading without delaying another client', async () => {
    const { url, runtime, attached } = await start({ maxBufferedBytes: 256 * 1024 });
    const slow = await TestClient.open(url);
    const normal = await TestClient.open(url);
    slow.send({ type: 'chat', text: 'manual' });
    const slowJob = await slow.next();
    normal.send({ type: 'chat', text: 'manual' });
    const normalJob = await normal.next();
    if (slowJob.type !== 'accepted' || normalJob.type !== 'accepted') throw new Error('expected accepted');
    slow.socket.pause();

    const big = { content: 'x'.repeat(64 * 1024) };
    const lags: number[] = [];
    normal.ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as ServerFrame;
      if (frame.type === 'event') lags.push(Date.now() - Number(frame.data.sentAt));
    });
    // Push until the server lets go of the slow client (its subscription is released at once); the
    // kernel's socket buffers absorb a few MB first, so the amount needed depends on the machine.
    let pushed = 0;
    while (runtime.listenerCount(slowJob.jobId) > 0) {
      if (pushed > 200 * 1024 * 1024) throw new Error('slow client never disconnected');
      for (let i = 0; i < 8; i++) runtime.emit(slowJob.jobId, 'result', big);
      pushed += 8 * big.content.length;
      runtime.emit(normalJob.jobId, 'processing', { message: 'tick', sentAt: Date.now() });
      await new Promise((resolve) => setImmediate(resolve));
    }
    runtime.emit(normalJob.jobId, 'done', { sentAt: Date.now() });
    const normalEvents = await normal.eventsUntilTerminal(normalJob.jobId);
    expect(normalEvents.at(-1)?.event).toBe('done');
    expect(lags.length).toBe(normalEvents.length);
    expect(Math.max(...lags)).toBeLessThan(500);

    // Reading again, the slow client finds the close frame behind its backlog: 1013, try again later.
    slow.socket.resume();
    expect((await slow.closed).code).toBe(1013);
    await until(() => attached.clientCount() === 1);
    await normal.expectAlive();
  });

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
