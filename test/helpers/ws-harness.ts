/**
 * The WebSocket endpoint alone, over a hand-written `Runtime`: a real HTTP server on port 0 with
 * `attachWebSocket` on it, and real `ws` clients that read frames in order.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pino, type Logger } from 'pino';
import { expect } from 'vitest';
import { WebSocket } from 'ws';
import { configSchema, type Config } from '../../src/config/config-schema.js';
import { isTerminal, type JobEvent, type JobEventName } from '../../src/jobs/job-event.js';
import { createMetrics } from '../../src/metrics/create-metrics.js';
import {
  SubmitRejected,
  type Accepted,
  type HealthBody,
  type Runtime,
  type StatusBody,
  type SubmitInput,
  type Unsubscribe,
} from '../../src/runtime/runtime.js';
import type { EventFrame, ServerFrame } from '../../src/transport/ws-frames.js';
import { attachWebSocket, type AttachedWebSocket, type WebSocketOptions } from '../../src/transport/ws-server.js';

export type Step = { event: JobEventName; data?: Record<string, unknown> };

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
 * Like the real one, `subscribe` refuses an `afterSeq` past the end of an ended job (`bad_request`).
 */
export class FakeRuntime implements Runtime {
  readonly jobs = new Map<string, FakeJob>();
  readonly submitted: SubmitInput[] = [];
  rejectWith: SubmitRejected | null = null;
  cancelRejectWith: SubmitRejected | null = null;
  script: (input: SubmitInput) => Step[] | null = (input) => (input.text === 'manual' ? null : DEFAULT_SCRIPT);
  private count = 0;
  /** Real metrics over this fake's status: the endpoint reports its connections into them. */
  readonly metrics = createMetrics({ status: () => this.status() });

  constructor(readonly config: Config) {}

  async health(): Promise<HealthBody> {
    return { ok: true };
  }

  async submit(input: SubmitInput): Promise<Accepted> {
    if (this.rejectWith !== null) throw this.rejectWith;
    this.submitted.push(input);
    const jobId = this.open(input.owner);
    const [first, ...rest] = this.script(input) ?? [];
    // Emitted before `accepted` can be sent: the server must still deliver it, after `accepted`.
    if (first !== undefined) this.emit(jobId, first.event, first.data);
    setTimeout(() => {
      for (const step of rest) this.emit(jobId, step.event, step.data);
    }, 5);
    return { jobId, conversationId: input.conversationId ?? `conv-${this.count}`, repeated: false };
  }

  /** A job of `owner` with no events yet; the test emits them. */
  open(owner: string): string {
    const jobId = `job-${++this.count}`;
    this.jobs.set(jobId, { owner, events: [], listeners: new Set(), finished: false });
    return jobId;
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
    if (this.cancelRejectWith !== null) throw this.cancelRejectWith;
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
    if (job.finished && afterSeq > job.events.length) {
      throw new SubmitRejected('bad_request', `afterSeq ${afterSeq} is past the end of the job (its last seq is ${job.events.length})`);
    }
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

  synologyDeliveries(): never {
    throw new Error('the fake runtime has no store (Synology is not configured in these tests)');
  }

  async trace(): Promise<null> {
    return null;
  }
}

/** Every client a test opened, terminated after the test whatever happened. */
const openClients: WebSocket[] = [];

/** A real `ws` client that queues what it receives, to read in order. */
export class TestClient {
  readonly frames: ServerFrame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** The client's TCP socket (to pause reading), set once the upgrade succeeded. */
  socket!: Socket;
  private cursor = 0;
  private wake: (() => void) | null = null;
  private closeCode: number | null = null;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(String(data)) as ServerFrame);
      this.wake?.();
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.wake?.();
        resolve({ code, reason: reason.toString() });
      }),
    );
  }

  static async open(url: string, headers: Record<string, string> = {}): Promise<TestClient> {
    const ws = new WebSocket(url, { headers });
    openClients.push(ws);
    // Listening from the start: a frame may arrive in the same read as the upgrade's response.
    const client = new TestClient(ws);
    // 'open' follows 'upgrade' synchronously: listen for both before awaiting either.
    const upgraded = once(ws, 'upgrade') as Promise<[IncomingMessage]>;
    const opened = once(ws, 'open');
    const [[response]] = await Promise.all([upgraded, opened]);
    client.socket = response.socket as Socket;
    return client;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** The next frame not read yet. */
  async next(timeoutMs = 2_000): Promise<ServerFrame> {
    const deadline = Date.now() + timeoutMs;
    while (this.cursor >= this.frames.length) {
      if (this.closeCode !== null) throw new Error(`connection closed (${this.closeCode}) with no frame left to read`);
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
  async eventsUntilTerminal(jobId: string, timeoutMs = 2_000): Promise<EventFrame[]> {
    const events: EventFrame[] = [];
    for (;;) {
      const frame = await this.next(timeoutMs);
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
export async function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
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

/** Waits for `condition`, checking every 10 ms, failing after `timeoutMs`. */
export async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export interface Harness {
  url: string;
  runtime: FakeRuntime;
  attached: AttachedWebSocket;
}

const cleanups: Array<() => Promise<void>> = [];

/** Stops every server and client the test started; call it from `afterEach`. */
export async function stopAll(): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
}

const silent = pino({ level: 'silent' });

export type StartOptions = {
  tokens?: string[];
  log?: Logger;
  /** `limits` of the config, over `messageChars: 100`. */
  limits?: Record<string, number>;
  /** `server` of the config (its `host` is one of the names the Host check accepts). */
  server?: Record<string, unknown>;
} & Partial<Omit<WebSocketOptions, 'runtime' | 'config' | 'log'>>;

/** A server on 127.0.0.1, port 0, with the WebSocket endpoint on it over a `FakeRuntime`. */
export async function start(options: StartOptions = {}): Promise<Harness> {
  const { tokens = [], log = silent, limits = {}, server: serverConfig = {}, ...wsOptions } = options;
  const config = configSchema.parse({
    server: serverConfig,
    auth: { tokens },
    modes: { daily: 'local' },
    limits: { messageChars: 100, ...limits },
  });
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

/** A pino logger that keeps every line it writes, parsed. */
export function capturingLog(level = 'trace'): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, lines };
}
