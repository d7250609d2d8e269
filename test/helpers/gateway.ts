import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { parseConfig } from '../../src/config/load-config.js';
import { createLogger } from '../../src/log.js';
import { createRuntime, type RuntimeDeps } from '../../src/runtime/create-runtime.js';
import type { Runtime } from '../../src/runtime/runtime.js';
import { startGateway } from '../../src/transport/start-gateway.js';
import { openStore } from '../../src/actors/store/open-store.js';
import type { FakeBackend } from '../fakes/fake-openai-backend.js';

/** A whole gateway (runtime, store, HTTP and WebSocket) on port 0, over the given fakes. */
export interface TestGateway {
  url: string;
  wsUrl: string;
  runtime: Runtime;
  dataDir: string;
  close(options?: { keepData?: boolean }): Promise<void>;
}

export interface TestGatewayOptions {
  classifier: FakeBackend;
  reasoner: FakeBackend;
  /** Extra config, merged over the test defaults. */
  config?: Record<string, unknown>;
  dataDir?: string;
  deps?: Partial<RuntimeDeps>;
}

/** A backend section on `fake` with the tests' short timeouts (health probed once a minute). */
export function testBackend(fake: FakeBackend) {
  return {
    baseUrl: fake.baseUrl,
    model: 'fake-model',
    timeoutMs: 5_000,
    streamDeadlineMs: 10_000,
    idleTimeoutMs: 2_000,
    connectTimeoutMs: 1_000,
    healthIntervalMs: 60_000,
  };
}

/** The config a test gateway runs with: two backends on the fakes, short timeouts, embedded database. */
export function testConfig(options: TestGatewayOptions, dataDir: string) {
  const backend = testBackend;
  return parseConfig({
    server: { host: '127.0.0.1', port: 0 },
    database: { url: null, dataDir },
    backends: { small: backend(options.classifier), large: backend(options.reasoner) },
    roles: { classifier: 'small', reasoner: 'large' },
    modes: { daily: 'small', deep: 'large' },
    persona: { name: '이드', locale: 'en' },
    ...options.config,
  });
}

export async function startTestGateway(options: TestGatewayOptions): Promise<TestGateway> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'sb-gateway-'));
  const config = testConfig(options, dataDir);
  const log = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const runtime = createRuntime(config, { log, ...options.deps });
  await runtime.start();
  const gateway = await startGateway({ runtime, log, host: '127.0.0.1', port: 0 });
  return {
    url: gateway.url,
    wsUrl: `${gateway.url.replace(/^http/, 'ws')}/ws`,
    runtime,
    dataDir,
    close: async ({ keepData = false } = {}) => {
      await runtime.stop(0);
      await gateway.close();
      if (!keepData && !options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A server frame as the tests read it. */
export type Frame = { type: string; [key: string]: unknown };
export interface EventFrame extends Frame {
  type: 'event';
  jobId: string;
  seq: number;
  event: string;
  data: Record<string, unknown>;
  at: string;
}

/** A real `ws` client that keeps every frame it got and can wait for the ones it needs. */
export class TestClient {
  readonly frames: Frame[] = [];
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      this.frames.push(JSON.parse(String(data)) as Frame);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static async connect(url: string, headers: Record<string, string> = {}): Promise<TestClient> {
    const socket = new WebSocket(url, { headers });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new TestClient(socket);
  }

  send(frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Waits for the first frame after index `from` that matches. */
  async waitFor(match: (frame: Frame) => boolean, timeoutMs = 10_000, from = 0): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.slice(from).find(match);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Sends a chat and resolves with its job id once accepted. */
  async chat(text: string, extra: Record<string, unknown> = {}): Promise<{ jobId: string; conversationId: string }> {
    const clientMsgId = `m-${Math.random().toString(36).slice(2)}`;
    const from = this.frames.length;
    this.send({ type: 'chat', text, clientMsgId, ...extra });
    const accepted = await this.waitFor((f) => (f.type === 'accepted' && f.clientMsgId === clientMsgId) || (f.type === 'error'), 10_000, from);
    if (accepted.type === 'error') throw new Error(`chat refused: ${JSON.stringify(accepted)}`);
    return { jobId: String(accepted.jobId), conversationId: String(accepted.conversationId) };
  }

  /** Every event frame of a job so far. */
  events(jobId: string): EventFrame[] {
    return this.frames.filter((f): f is EventFrame => f.type === 'event' && f.jobId === jobId);
  }

  /** Waits for the job's terminal event and returns all its events. */
  async finished(jobId: string, timeoutMs = 15_000): Promise<EventFrame[]> {
    await this.waitFor((f) => f.type === 'event' && f.jobId === jobId && ['done', 'error', 'cancelled'].includes(String(f.event)), timeoutMs);
    return this.events(jobId);
  }

  /** The answer of a job: its `result` chunks, concatenated. */
  answer(jobId: string): string {
    return this.events(jobId)
      .filter((e) => e.event === 'result')
      .map((e) => String(e.data.content))
      .join('');
  }

  close(): void {
    this.socket.close();
  }
}

/** Puts documents into the embedded database in `dataDir` before a gateway opens it. */
export async function seedDocuments(dataDir: string, documents: Array<{ id: string; title: string; body: string }>): Promise<void> {
  const opened = await openStore({ url: null, dataDir }, { cleanupEveryMs: 0 });
  try {
    for (const document of documents) await opened.store.upsertDocument({ ...document, path: document.id });
  } finally {
    await opened.close();
  }
}
