/**
 * A real HTTP server on 127.0.0.1 that speaks the OpenAI-compatible API the way local model servers
 * do, with scriptable replies and faults. Tests talk to it with the real client over real sockets.
 */
import { EventEmitter, setMaxListeners } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';

/**
 * - `refuse`: drop this connection unanswered and stop listening, so later connections get a real
 *   ECONNREFUSED until `setDown(false)`.
 * - `reset`: drop this connection before any response byte.
 * - `http_500` / `http_400`: an error status (override with `status`) and a JSON error body.
 * - `hang_before_headers`: accept the request and never answer.
 * - `hang_after_headers`: stream headers, then only `: keep-alive` comments every `chunkDelayMs`
 *   (default 50) and never an event.
 * - `stall_mid_stream`: headers and the first content piece, then silence.
 * - `drop_mid_stream`: headers and the first content piece, then the socket is destroyed.
 * - `malformed_sse`: a valid first event, then an event whose data is not JSON (non-stream: bad JSON).
 * - `slow_drip`: one piece every `chunkDelayMs` (default 50) for ever: never idle, never finished.
 * - `restart`: headers and the first content piece (non-stream: half the body), then the server goes
 *   away as a restarted process would — every connection destroyed, the port closed — and listens again
 *   on the same port after `restartAfterMs` (default 100) or at `setDown(false)`, whichever is first.
 */
export type FakeFault =
  | 'refuse'
  | 'reset'
  | 'http_500'
  | 'http_400'
  | 'hang_before_headers'
  | 'hang_after_headers'
  | 'stall_mid_stream'
  | 'drop_mid_stream'
  | 'malformed_sse'
  | 'slow_drip'
  | 'restart';

export interface FakeToolCall {
  /** Default `call_<n>`. */
  id?: string;
  name: string;
  /** A JSON string; as an array it is streamed in these pieces. */
  arguments: string | string[];
}

/** One scripted answer to `POST /v1/chat/completions`. */
export interface FakeReply {
  /** The answer; as an array it is streamed in exactly these pieces (joined when not streaming). */
  content?: string | string[];
  toolCalls?: FakeToolCall[];
  /** Default `tool_calls` when there are tool calls, else `stop`. */
  finishReason?: string | null;
  /** Pause before each SSE event (and the `slow_drip` cadence). Default 0 (50 for `slow_drip`). */
  chunkDelayMs?: number;
  /** Pause before the status line. */
  headersDelayMs?: number;
  fault?: FakeFault;
  /** How long a `restart` keeps the port closed. Default 100. */
  restartAfterMs?: number;
  /** Status for `http_500`/`http_400` (e.g. 503, 429). */
  status?: number;
  /** End the stream cleanly without `data: [DONE]`. */
  omitDone?: boolean;
  /** Send a `: keep-alive` comment before the first event. */
  heartbeat?: boolean;
  /** Use CRLF line endings in the event stream. */
  crlf?: boolean;
  /** Answer with one JSON body even when the request asked for `stream: true`. */
  ignoreStream?: boolean;
  /** Keep the response open after `data: [DONE]` instead of ending it. */
  holdAfterDone?: boolean;
}

/** What the fake understood of a chat request (validated loosely; unknown members kept). */
export type FakeRequestBody = z.infer<typeof chatBodySchema>;

/** A reply, or a function that picks one from the request (e.g. by the last user message). */
export type FakeReplySource = FakeReply | ((body: FakeRequestBody) => FakeReply | Promise<FakeReply>);

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body of a valid chat request; `null` for GETs and rejected bodies. */
  body: FakeRequestBody | null;
  /** Counts the fake's TCP connections from 1: equal ids mean a reused keep-alive connection. */
  connectionId: number;
  /** `Date.now()` when the request arrived / its response closed. */
  startedAt: number;
  endedAt?: number;
  /** The client closed the connection before the response was complete. */
  clientAborted: boolean;
  abortedAt?: number;
}

export interface FakeBackendOptions {
  /** The reply used when the queue is empty. Default `{ content: ['Hello', ' world'] }`. */
  defaultReply?: FakeReplySource;
  /** Ids listed by `GET /v1/models`. Default `['fake-model']`. */
  models?: string[];
  /** The port on 127.0.0.1. Default 0 (any free port). */
  port?: number;
}

/** What `GET /status` reports; `null` answers 404. */
export interface FakeStatus {
  active_jobs: number;
  total_requests: number;
}

const chatBodySchema = z.looseObject({
  model: z.string(),
  stream: z.boolean().optional(),
  messages: z.array(z.looseObject({ role: z.string(), content: z.string().nullable().optional() })).min(1),
  tools: z.array(z.unknown()).optional(),
  tool_choice: z.unknown().optional(),
  max_tokens: z.number().optional(),
  temperature: z.number().optional(),
});

const SLOW_DRIP_DEFAULT_MS = 50;
/** How long the drop faults wait after the first piece so the client surely read it. */
const DROP_AFTER_MS = 30;
/** How long a `restart` keeps the port closed by default. */
const RESTART_AFTER_MS = 100;

/** The running fake. Mutable fields (`models`, `modelsDelayMs`, `modelsFault`, `status`) act at once. */
export class FakeBackend {
  readonly baseUrl: string;
  readonly statusUrl: string;
  readonly port: number;
  /** Every request, in arrival order. */
  readonly requests: RecordedRequest[] = [];
  /** Emits `request` and `clientAbort` with the `RecordedRequest`. */
  readonly events = new EventEmitter();
  /** Chat completions open right now, and the most seen at once. */
  concurrent = 0;
  maxConcurrent = 0;
  models: string[];
  /** Latency of `GET /v1/models` (the health probe). */
  modelsDelayMs = 0;
  /** Called when a `/models` request arrives, before any delay: a test moves its simulated clock here. */
  onModels: (() => void) | null = null;
  /** Failure of `GET /v1/models`: an HTTP 500, no answer at all, or a dropped connection. */
  modelsFault: 'http_500' | 'hang' | 'reset' | null = null;
  status: FakeStatus | null = null;

  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly connectionIds = new WeakMap<Socket, number>();
  private connections = 0;
  /** Aborted when the fake closes, so every pending sleep of a response ends. */
  private readonly lifetime = new AbortController();
  private readonly queue: FakeReplySource[] = [];
  private defaultReply: FakeReplySource;
  private readonly deliveredAborts = new Set<RecordedRequest>();
  private down = false;
  private closed = false;
  private sequence = 0;

  /** Use `startFakeBackend()`. */
  constructor(server: Server, port: number, options: FakeBackendOptions) {
    this.server = server;
    this.port = port;
    this.baseUrl = `http://127.0.0.1:${port}/v1`;
    this.statusUrl = `http://127.0.0.1:${port}/status`;
    this.defaultReply = options.defaultReply ?? { content: ['Hello', ' world'] };
    this.models = options.models ?? ['fake-model'];
    this.events.setMaxListeners(100);
    // Every open response listens to the fake's lifetime; hundreds may be open in a load test.
    setMaxListeners(0, this.lifetime.signal);
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      this.connectionIds.set(socket, ++this.connections);
      socket.once('close', () => this.sockets.delete(socket));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch(() => {
        if (!res.destroyed) res.destroy();
      });
    });
  }

  /** Queues replies for the next chat completions, in order; the default answers when it is empty. */
  enqueue(...replies: FakeReplySource[]): void {
    this.queue.push(...replies);
  }

  /** Replaces the reply used when the queue is empty. */
  setDefault(reply: FakeReplySource): void {
    this.defaultReply = reply;
  }

  /**
   * Down: stop listening and destroy every connection (also idle keep-alive ones), so connections get
   * a real ECONNREFUSED. Up: listen again on the same port.
   */
  async setDown(down: boolean): Promise<void> {
    if (this.closed || down === this.down) return;
    this.down = down;
    if (down) {
      const closing = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.destroySockets();
      await closing;
    } else {
      await listen(this.server, this.port);
    }
  }

  /** Chat-completion requests only. */
  get chatRequests(): RecordedRequest[] {
    return this.requests.filter((request) => request.path.endsWith('/chat/completions'));
  }

  /** Resolves once at least `count` requests (of any path) have arrived. */
  async waitForRequests(count: number, timeoutMs = 5_000): Promise<void> {
    await this.waitFor('request', () => (this.requests.length >= count ? true : undefined), timeoutMs, `${count} requests`);
  }

  /**
   * Resolves with the earliest request whose client went away and that no earlier call returned;
   * waits for the next one when there is none yet.
   */
  async waitForClientAbort(timeoutMs = 5_000): Promise<RecordedRequest> {
    const take = (): RecordedRequest | undefined => {
      const found = this.requests.find((request) => request.clientAborted && !this.deliveredAborts.has(request));
      if (found) this.deliveredAborts.add(found);
      return found;
    };
    return this.waitFor('clientAbort', take, timeoutMs, 'a client abort');
  }

  /** Forgets recorded requests and counters (not the reply queue). */
  resetStats(): void {
    this.requests.length = 0;
    this.deliveredAborts.clear();
    this.maxConcurrent = this.concurrent;
  }

  /** Stops listening, destroys every open socket and ends every pending response. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.lifetime.abort();
    const wasListening = !this.down;
    const closing = wasListening ? new Promise<void>((resolve) => this.server.close(() => resolve())) : Promise.resolve();
    this.destroySockets();
    await closing;
    this.events.removeAllListeners();
  }

  /** Goes down (every connection dropped) and comes back on the same port after `ms`. */
  private async restart(ms: number): Promise<void> {
    await this.setDown(true);
    setTimeout(() => void this.setDown(false).catch(() => undefined), ms).unref();
  }

  private destroySockets(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  /** Resolves with `take()`'s first defined value, checked now and after each `event`. */
  private waitFor<T>(event: string, take: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const ready = take();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.events.off(event, check);
        reject(new Error(`fake backend: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      const check = (): void => {
        const value = take();
        if (value === undefined) return;
        clearTimeout(timer);
        this.events.off(event, check);
        resolve(value);
      };
      this.events.on(event, check);
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path,
      headers: req.headers,
      connectionId: this.connectionIds.get(req.socket) ?? 0,
      body: null,
      startedAt: Date.now(),
      clientAborted: false,
    };
    const isChat = req.method === 'POST' && path === '/v1/chat/completions';
    // Aborted when the response closes for any reason: ends the sleeps of this response's script.
    const gone = new AbortController();
    const lifetime = this.lifetime.signal;
    const onLifetimeEnd = (): void => gone.abort();
    lifetime.addEventListener('abort', onLifetimeEnd, { once: true });
    const state = { serverDropped: false };

    if (isChat) {
      this.concurrent += 1;
      this.maxConcurrent = Math.max(this.maxConcurrent, this.concurrent);
    }
    res.on('close', () => {
      record.endedAt = Date.now();
      if (isChat) this.concurrent -= 1;
      gone.abort();
      lifetime.removeEventListener('abort', onLifetimeEnd);
      // Our own drops, going down and closing are not the client's doing.
      if (!res.writableFinished && !state.serverDropped && !this.down && !this.closed) {
        record.clientAborted = true;
        record.abortedAt = record.endedAt;
        this.events.emit('clientAbort', record);
      }
    });
    this.requests.push(record);
    this.events.emit('request', record);

    const raw = await readBody(req);
    if (raw === null) return;

    if (isChat) {
      const parsed = safeJson(raw);
      const body = chatBodySchema.safeParse(parsed);
      if (!body.success) {
        sendJson(res, 400, { error: { message: 'invalid chat request', type: 'invalid_request_error' } });
        return;
      }
      record.body = body.data;
      const source = this.queue.shift() ?? this.defaultReply;
      const reply = typeof source === 'function' ? await source(body.data) : source;
      await this.answerChat(req, res, body.data, reply, gone.signal, state);
      return;
    }
    if (req.method === 'GET' && path === '/v1/models') {
      await this.answerModels(req, res, gone.signal, state);
      return;
    }
    if (req.method === 'GET' && path === '/status') {
      if (this.status === null) sendJson(res, 404, { error: { message: 'no status', type: 'not_found' } });
      else sendJson(res, 200, this.status);
      return;
    }
    sendJson(res, 404, { error: { message: 'not found', type: 'not_found' } });
  }

  private async answerModels(req: IncomingMessage, res: ServerResponse, gone: AbortSignal, state: { serverDropped: boolean }) {
    this.onModels?.();
    if (this.modelsDelayMs > 0 && !(await pause(this.modelsDelayMs, gone))) return;
    if (this.modelsFault === 'hang') {
      await pause(HANG_MS, gone);
      return;
    }
    if (this.modelsFault === 'reset') {
      state.serverDropped = true;
      req.socket.destroy();
      return;
    }
    if (this.modelsFault === 'http_500') {
      sendJson(res, 500, { error: { message: 'fake failure', type: 'server_error' } });
      return;
    }
    const created = Math.floor(Date.now() / 1000);
    sendJson(res, 200, {
      object: 'list',
      data: this.models.map((id) => ({ id, object: 'model', created, owned_by: 'fake' })),
    });
  }

  private async answerChat(
    req: IncomingMessage,
    res: ServerResponse,
    body: FakeRequestBody,
    reply: FakeReply,
    gone: AbortSignal,
    state: { serverDropped: boolean },
  ): Promise<void> {
    const fault = reply.fault;
    if (fault === 'refuse' || fault === 'reset') {
      state.serverDropped = true;
      req.socket.destroy();
      if (fault === 'refuse') await this.setDown(true);
      return;
    }
    if (reply.headersDelayMs && !(await pause(reply.headersDelayMs, gone))) return;
    if (fault === 'hang_before_headers') {
      await pause(HANG_MS, gone);
      return;
    }
    if (fault === 'http_500' || fault === 'http_400') {
      const status = reply.status ?? (fault === 'http_500' ? 500 : 400);
      sendJson(res, status, { error: { message: 'fake failure', type: fault === 'http_500' ? 'server_error' : 'invalid_request_error' } });
      return;
    }
    const id = `chatcmpl-fake-${++this.sequence}`;
    const dropSocket =
      fault === 'restart'
        ? (): void => {
            state.serverDropped = true;
            void this.restart(reply.restartAfterMs ?? RESTART_AFTER_MS);
          }
        : (): void => {
            state.serverDropped = true;
            req.socket.destroy();
          };
    if (body.stream === true && reply.ignoreStream !== true) {
      await streamReply(res, body.model, id, reply, gone, dropSocket);
    } else {
      await jsonReply(res, body.model, id, reply, gone, dropSocket);
    }
  }
}

/** Starts a fake on 127.0.0.1 with a free port. */
export async function startFakeBackend(options: FakeBackendOptions = {}): Promise<FakeBackend> {
  const server = createServer();
  await listen(server, options.port ?? 0);
  const port = (server.address() as AddressInfo).port;
  return new FakeBackend(server, port, options);
}

// ─── Reply scripts ───────────────────────────────────────────────────────────────────────────────

/** Long enough to outlast any test; `gone` ends it early. Kept below the 32-bit timer limit. */
const HANG_MS = 2 ** 31 - 1;

function pieces(content: string | string[] | undefined): string[] {
  if (content === undefined) return [];
  return typeof content === 'string' ? [content] : content;
}

function finishReasonOf(reply: FakeReply): string | null {
  if (reply.finishReason !== undefined) return reply.finishReason;
  return reply.toolCalls && reply.toolCalls.length > 0 ? 'tool_calls' : 'stop';
}

async function streamReply(
  res: ServerResponse,
  model: string,
  id: string,
  reply: FakeReply,
  gone: AbortSignal,
  dropSocket: () => void,
): Promise<void> {
  const eol = reply.crlf ? '\r\n' : '\n';
  const created = Math.floor(Date.now() / 1000);
  const chunk = (delta: Record<string, unknown>, finishReason: string | null = null): string =>
    `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finishReason }] })}${eol}${eol}`;
  const delay = reply.chunkDelayMs ?? (reply.fault === 'slow_drip' ? SLOW_DRIP_DEFAULT_MS : 0);
  /** Writes one event after the configured pause; false when the client is gone. */
  const send = async (text: string): Promise<boolean> => {
    if (delay > 0 && !(await pause(delay, gone))) return false;
    if (gone.aborted) return false;
    res.write(text);
    return true;
  };

  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.flushHeaders();
  if (reply.heartbeat) res.write(`: keep-alive${eol}${eol}`);
  if (reply.fault === 'hang_after_headers') {
    while (await pause(reply.chunkDelayMs ?? SLOW_DRIP_DEFAULT_MS, gone)) res.write(`: keep-alive${eol}${eol}`);
    return;
  }
  res.write(chunk({ role: 'assistant', content: '' }));

  const content = pieces(reply.content);
  const first = content[0] ?? 'x';
  switch (reply.fault) {
    case 'stall_mid_stream':
      if (await send(chunk({ content: first }))) await pause(HANG_MS, gone);
      return;
    case 'drop_mid_stream':
    case 'restart':
      if ((await send(chunk({ content: first }))) && (await pause(DROP_AFTER_MS, gone))) dropSocket();
      return;
    case 'malformed_sse':
      if (!(await send(chunk({ content: first })))) return;
      if (!(await send(`data: {"choices":[{"delta":{"content": oops${eol}${eol}`))) return;
      res.end(`data: [DONE]${eol}${eol}`);
      return;
    case 'slow_drip':
      for (let n = 0; ; n += 1) {
        if (!(await send(chunk({ content: content[n % Math.max(content.length, 1)] ?? '.' })))) return;
      }
    default:
      break;
  }

  for (const piece of content) {
    if (!(await send(chunk({ content: piece })))) return;
  }
  for (const [index, call] of (reply.toolCalls ?? []).entries()) {
    const head = { index, id: call.id ?? `call_${index}`, type: 'function', function: { name: call.name, arguments: '' } };
    if (!(await send(chunk({ tool_calls: [head] })))) return;
    for (const part of pieces(call.arguments)) {
      if (!(await send(chunk({ tool_calls: [{ index, function: { arguments: part } }] })))) return;
    }
  }
  if (!(await send(chunk({}, finishReasonOf(reply))))) return;
  if (reply.holdAfterDone) {
    res.write(`data: [DONE]${eol}${eol}`);
    await pause(HANG_MS, gone);
    return;
  }
  res.end(reply.omitDone ? undefined : `data: [DONE]${eol}${eol}`);
}

async function jsonReply(
  res: ServerResponse,
  model: string,
  id: string,
  reply: FakeReply,
  gone: AbortSignal,
  dropSocket: () => void,
): Promise<void> {
  const toolCalls = (reply.toolCalls ?? []).map((call, index) => ({
    id: call.id ?? `call_${index}`,
    type: 'function',
    function: { name: call.name, arguments: pieces(call.arguments).join('') },
  }));
  const content = pieces(reply.content).join('');
  const text = JSON.stringify({
    id,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: content.length === 0 && toolCalls.length > 0 ? null : content,
          ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
        },
        finish_reason: finishReasonOf(reply),
      },
    ],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  });
  const half = text.slice(0, Math.floor(text.length / 2));

  switch (reply.fault) {
    case 'stall_mid_stream':
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(half);
      await pause(HANG_MS, gone);
      return;
    case 'drop_mid_stream':
    case 'restart':
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(half);
      if (await pause(DROP_AFTER_MS, gone)) dropSocket();
      return;
    case 'malformed_sse':
      sendRaw(res, 200, 'application/json', `${half} oops`);
      return;
    case 'hang_after_headers':
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      await pause(HANG_MS, gone);
      return;
    case 'slow_drip':
      // JSON may begin with any amount of whitespace: bytes keep coming, the body never completes.
      res.writeHead(200, { 'content-type': 'application/json' });
      while (await pause(reply.chunkDelayMs ?? SLOW_DRIP_DEFAULT_MS, gone)) res.write(' ');
      return;
    default:
      sendRaw(res, 200, 'application/json', text);
  }
}

// ─── Helpers ─────────────────────────────────────────────────────────────────────────────────────

function listen(server: Server, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Resolves true after `ms`, or false as soon as `signal` aborts (the response is gone). */
async function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  try {
    await sleep(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

/** The request body as text; `null` when the client went away while sending it. */
async function readBody(req: IncomingMessage): Promise<string | null> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of req) chunks.push(chunk as Buffer);
  } catch {
    return null;
  }
  return Buffer.concat(chunks).toString('utf8');
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  sendRaw(res, status, 'application/json', JSON.stringify(value));
}

function sendRaw(res: ServerResponse, status: number, contentType: string, text: string): void {
  if (res.destroyed) return;
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
