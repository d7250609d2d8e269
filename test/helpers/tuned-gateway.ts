/**
 * A whole gateway in process (runtime, store, HTTP and WebSocket on port 0) over two fakes, with every
 * setting a test of limits and failure paths needs: per-backend settings (timeouts, health interval,
 * model, concurrency, status URL), config sections merged over the defaults, runtime deps (`delays`),
 * and WebSocket options. It runs on PostgreSQL when `TEST_DATABASE_URL` is set (a database of its own,
 * dropped at close: a gateway starts in a fraction of a second) and on PGlite otherwise.
 *
 * Also here: a lean WebSocket client that indexes frames by job and by `clientMsgId` (thousands of jobs
 * per test), waiting with deadlines, and memory readings (in process, and of a child process).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import WebSocket from 'ws';
import { parseConfig } from '../../src/config/load-config.js';
import { createLogger } from '../../src/log.js';
import { createRuntime, type RuntimeDeps } from '../../src/runtime/create-runtime.js';
import type { Runtime, StatusBody } from '../../src/runtime/runtime.js';
import { startGateway } from '../../src/transport/start-gateway.js';
import type { FakeBackend } from '../fakes/fake-openai-backend.js';
import { prepareGatewayDatabase, type GatewayDatabase } from './gateway-database.js';

export interface TunedGatewayOptions {
  /** The classifier (`small`, also mode `daily`). */
  small: FakeBackend;
  /** The reasoner (`large`, also mode `deep`). */
  large: FakeBackend;
  /** Settings of each backend over the test defaults. */
  backends?: { small?: Record<string, unknown>; large?: Record<string, unknown> };
  /** Config sections: objects are merged over the defaults' sections (so `limits: { … }` keeps the rest). */
  config?: Record<string, unknown>;
  deps?: Partial<RuntimeDeps>;
  ws?: Parameters<typeof startGateway>[0]['ws'];
}

export interface TunedGateway {
  url: string;
  wsUrl: string;
  runtime: Runtime;
  database: GatewayDatabase;
  /** `GET /status` over HTTP. */
  status(): Promise<StatusBody>;
  /** Stops the gateway (transports, then the runtime) and keeps its database for `database.inspect`. */
  stop(): Promise<void>;
  /** Stops it (if not yet) and drops its database. */
  close(): Promise<void>;
}

/** The backend settings every tuned gateway starts from: short timeouts, probes once a minute. */
export function backendDefaults(fake: FakeBackend): Record<string, unknown> {
  return {
    baseUrl: fake.baseUrl,
    model: 'fake-model',
    timeoutMs: 5_000,
    streamDeadlineMs: 20_000,
    idleTimeoutMs: 3_000,
    connectTimeoutMs: 1_000,
    healthIntervalMs: 60_000,
  };
}

export async function startTunedGateway(options: TunedGatewayOptions): Promise<TunedGateway> {
  const database = await prepareGatewayDatabase(process.env['TEST_DATABASE_URL'] ? 'postgres' : 'pglite', { name: 'tuned' });
  const sections: Record<string, Record<string, unknown>> = {
    server: { host: '127.0.0.1', port: 0 },
    database: { ...database.databaseConfig },
    backends: {
      small: { ...backendDefaults(options.small), ...options.backends?.small },
      large: { ...backendDefaults(options.large), ...options.backends?.large },
    },
    roles: { classifier: 'small', reasoner: 'large' },
    modes: { daily: 'small', deep: 'large' },
    persona: { name: 'Eid', locale: 'en' },
  };
  for (const [key, value] of Object.entries(options.config ?? {})) {
    const base = sections[key];
    sections[key] = base !== undefined && isPlainObject(value) && key !== 'backends' && key !== 'modes' ? { ...base, ...value } : (value as Record<string, unknown>);
  }
  const config = parseConfig(sections);
  const log = createLogger({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
  const runtime = createRuntime(config, { log, ...options.deps });
  try {
    await runtime.start();
  } catch (error) {
    await database.dispose();
    throw error;
  }
  const gateway = await startGateway({ runtime, log, host: '127.0.0.1', port: 0, ...(options.ws ? { ws: options.ws } : {}) });
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      await gateway.close();
      await runtime.stop(0);
    })());
  let closed = false;
  return {
    url: gateway.url,
    wsUrl: `${gateway.url.replace(/^http/, 'ws')}/ws`,
    runtime,
    database,
    status: async () => {
      // With auth.tokens set, /status needs a token like every route but /healthz.
      const token = config.auth.tokens[0];
      const response = await fetch(`${gateway.url}/status`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
      if (!response.ok) throw new Error(`GET /status answered ${response.status}`);
      return (await response.json()) as StatusBody;
    },
    stop,
    close: async () => {
      if (closed) return;
      closed = true;
      await stop();
      await database.dispose();
    },
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Polls `check` every `everyMs` until it returns a value other than undefined/false, or fails at the deadline. */
export async function waitUntil<T>(check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, what: string, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() >= deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

// ─── A lean client ──────────────────────────────────────────────────────────────────────────────

export interface EventFrame {
  type: 'event';
  jobId: string;
  seq: number;
  event: string;
  data: Record<string, unknown>;
  at: string;
  /** `Date.now()` when this client received it. */
  receivedAt: number;
}

export type AnyFrame = { type: string; receivedAt: number; [key: string]: unknown };

const TERMINAL = new Set(['done', 'error', 'cancelled']);

export function isTerminalEvent(event: { event: string }): boolean {
  return TERMINAL.has(event.event);
}

/**
 * A real `ws` client for load: frames are indexed by job (events) and by `clientMsgId` (accepted or
 * error), so thousands of jobs cost no scans; waits resolve when their frame arrives.
 */
export class JobClient {
  readonly events = new Map<string, EventFrame[]>();
  /** Frames other than events, in order (accepted, error, status, pong, …). */
  readonly others: AnyFrame[] = [];
  /** How the server closed the connection, once it has. */
  closed: { code: number; reason: string } | null = null;
  private readonly replies = new Map<string, { resolve: (frame: AnyFrame) => void }>();
  private readonly terminalWaiters = new Map<string, Array<() => void>>();
  private readonly anyWaiters = new Set<() => void>();
  private sequence = 0;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (raw) => this.receive(JSON.parse(String(raw)) as AnyFrame));
    socket.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wakeAll();
    });
  }

  static async connect(url: string, token?: string): Promise<JobClient> {
    const socket = new WebSocket(url, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
      socket.once('unexpected-response', (_request, response) => reject(new Error(`upgrade refused: ${response.statusCode}`)));
    });
    return new JobClient(socket);
  }

  send(frame: unknown): void {
    this.socket.send(JSON.stringify(frame));
  }

  /** Sends a chat; resolves with its `accepted`, rejects with the `error` frame that answered it. */
  chat(text: string, extra: Record<string, unknown> = {}): Promise<{ jobId: string; conversationId: string; sentAt: number }> {
    const clientMsgId = `c${++this.sequence}-${Math.random().toString(36).slice(2, 8)}`;
    const sentAt = Date.now();
    const reply = new Promise<AnyFrame>((resolve) => this.replies.set(clientMsgId, { resolve }));
    this.send({ type: 'chat', text, clientMsgId, ...extra });
    return reply.then((frame) => {
      if (frame.type !== 'accepted') throw new Error(`chat refused: ${JSON.stringify(frame)}`);
      return { jobId: String(frame.jobId), conversationId: String(frame.conversationId), sentAt };
    });
  }

  /**
   * Sends chats keeping at most `window` unanswered at once (a connection holds at most 16 frames waiting
   * for their reply; beyond, `rate_limited`); resolves with every `accepted`, in the order of `texts`.
   */
  async chatMany(texts: string[], window = 8, extra: Record<string, unknown> = {}): Promise<Array<{ jobId: string; conversationId: string; text: string }>> {
    const accepted: Array<{ jobId: string; conversationId: string; text: string }> = new Array(texts.length);
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < texts.length) {
        const index = next++;
        const text = texts[index] as string;
        const { jobId, conversationId } = await this.chat(text, extra);
        accepted[index] = { jobId, conversationId, text };
      }
    };
    await Promise.all(Array.from({ length: Math.min(window, texts.length) }, lane));
    return accepted;
  }

  /** The job's events so far. */
  of(jobId: string): EventFrame[] {
    return this.events.get(jobId) ?? [];
  }

  /** Waits for the job's terminal event; returns all its events. */
  async finished(jobId: string, timeoutMs = 15_000): Promise<EventFrame[]> {
    const done = (): boolean => this.of(jobId).some(isTerminalEvent);
    if (!done()) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`job ${jobId} did not end within ${timeoutMs} ms; last events ${JSON.stringify(this.of(jobId).slice(-3))}`)), timeoutMs);
        const wake = (): void => {
          if (!done() && this.closed === null) return;
          clearTimeout(timer);
          if (done()) resolve();
          else reject(new Error(`connection closed (${this.closed?.code}) before job ${jobId} ended`));
        };
        const list = this.terminalWaiters.get(jobId) ?? [];
        list.push(wake);
        this.terminalWaiters.set(jobId, list);
      });
    }
    return this.of(jobId);
  }

  /** Waits for a non-event frame that matches, received after index `from` of `others`. */
  async waitForOther(match: (frame: AnyFrame) => boolean, timeoutMs = 10_000, from = 0): Promise<AnyFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.others.slice(from).find(match);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; last ${JSON.stringify(this.others.slice(-3))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        const wake = (): void => {
          clearTimeout(timer);
          this.anyWaiters.delete(wake);
          resolve();
        };
        this.anyWaiters.add(wake);
      });
    }
  }

  /** The answer of a job: its `result` chunks, concatenated. */
  answer(jobId: string): string {
    return this.of(jobId)
      .filter((e) => e.event === 'result')
      .map((e) => String(e.data.content))
      .join('');
  }

  close(): void {
    this.socket.close();
  }

  private receive(frame: AnyFrame): void {
    frame.receivedAt = Date.now();
    if (frame.type === 'event') {
      const event = frame as unknown as EventFrame;
      const list = this.events.get(event.jobId);
      if (list) list.push(event);
      else this.events.set(event.jobId, [event]);
      if (isTerminalEvent(event)) {
        const waiters = this.terminalWaiters.get(event.jobId);
        this.terminalWaiters.delete(event.jobId);
        for (const wake of waiters ?? []) wake();
      }
    } else {
      this.others.push(frame);
      const clientMsgId = typeof frame.clientMsgId === 'string' ? frame.clientMsgId : undefined;
      if (clientMsgId !== undefined && (frame.type === 'accepted' || frame.type === 'error')) {
        this.replies.get(clientMsgId)?.resolve(frame);
        this.replies.delete(clientMsgId);
      }
    }
    for (const wake of [...this.anyWaiters]) wake();
  }

  private wakeAll(): void {
    for (const waiters of this.terminalWaiters.values()) for (const wake of [...waiters]) wake();
    for (const wake of [...this.anyWaiters]) wake();
  }
}

// ─── Memory ─────────────────────────────────────────────────────────────────────────────────────

let gcFunction: (() => void) | undefined;

/**
 * A full garbage collection in this process. vitest's workers run without `--expose-gc`; setting the
 * flag at run time and taking `gc` from a fresh context gives the same function.
 */
export function collectGarbage(): void {
  if (gcFunction === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) gcFunction = exposed;
    else {
      setFlagsFromString('--expose-gc');
      gcFunction = runInNewContext('gc') as () => void;
    }
  }
  gcFunction();
}

/** This process's RSS after two full collections (the second one frees what the first one's finalizers let go). */
export async function settledRss(): Promise<number> {
  collectGarbage();
  await new Promise((resolve) => setTimeout(resolve, 50));
  collectGarbage();
  return process.memoryUsage().rss;
}

/** Resident set size now and its peak since the last {@link resetPeakRss} of a process (Linux `/proc`). */
export function processRss(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!match) throw new Error(`/proc/${pid}/status has no ${name}`);
    return Number(match[1]) * 1024;
  };
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

/** Resets a process's peak RSS (`VmHWM`) to its current RSS (Linux ≥ 4.0, a process we own). */
export function resetPeakRss(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

export const MIB = 1024 * 1024;
