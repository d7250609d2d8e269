/**
 * The undici implementation of `InferenceClient` for one OpenAI-compatible server (MLX, llama.cpp,
 * Ollama, vLLM, …). Every failure leaves as one of the coded errors of `src/errors.ts`; messages name
 * only status codes, host/path and error classes, never request or response bodies.
 */
import { Agent, request, type Dispatcher } from 'undici';
import { z } from 'zod';
import {
  BackendProtocolError,
  BackendRequestError,
  BackendUnavailableError,
  AnswerTooLongError,
  CancelledError,
  StreamDeadlineError,
  SwitchboardError,
} from '../../errors.js';
import { storableText } from '../../storable-text.js';
import { SseParser } from './sse-parser.js';
import type {
  BackendStatusReport,
  ChatRequest,
  ChatResult,
  InferenceClient,
  StreamOptions,
  ToolCall,
} from './types.js';

export interface OpenAIClientOptions {
  /** The API root, e.g. `http://127.0.0.1:8800/v1`; a trailing slash is ignored. */
  baseUrl: string;
  /** The model name sent in every completion request. */
  model: string;
  /** A `{"active_jobs":N,"total_requests":N}` endpoint; `null`/absent = `fetchStatus` returns `null`. */
  statusUrl?: string | null;
  /** Sent as `Authorization: Bearer …` when set. */
  apiKey?: string;
  /** TCP connect timeout of the client's own `Agent` (ignored with a caller's `dispatcher`). Default 5000. */
  connectTimeoutMs?: number;
  /** From the start of a call to the response headers, and for streams to the first SSE event. Default `timeoutMs`. */
  firstByteTimeoutMs?: number;
  /** Longest gap between two body chunks of a stream once its first event arrived. Default 60000. */
  idleTimeoutMs?: number;
  /** Wall clock for a whole non-streaming call (`complete`, `listModels`, `fetchStatus`). Default 120000. */
  timeoutMs?: number;
  /** Wall clock for a whole `stream` call. Default 300000. */
  streamDeadlineMs?: number;
  /** Use this dispatcher instead of creating an `Agent`; the caller owns (and closes) it. */
  dispatcher?: Dispatcher;
  /**
   * The longest answer read, in characters (default 200000): beyond it a call fails with
   * `answer_too_long` and the rest of the body is not read, streamed or not.
   */
  maxAnswerChars?: number;
}

/** `InferenceClient` plus the lifecycle of its connection pool. */
export interface OpenAIClient extends InferenceClient {
  /** Closes the client's own keep-alive `Agent` (a no-op with a caller's `dispatcher`). */
  close(): Promise<void>;
}

const DEFAULTS = {
  connectTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
  timeoutMs: 120_000,
  streamDeadlineMs: 300_000,
  maxAnswerChars: 200_000,
} as const;

/** JSON around an answer (and `\uXXXX` escapes, up to 6 bytes a character) may make a body this much larger. */
const BODY_BYTES_PER_CHAR = 6;
const BODY_OVERHEAD_BYTES = 64 * 1024;

/**
 * After `data: [DONE]` the answer is complete; we still wait up to this long (or the idle timeout, if
 * shorter) for the response to end so the keep-alive connection can be reused, then drop the
 * connection instead of failing the call.
 */
const DRAIN_AFTER_DONE_MS = 2_000;

/** Tool-call slots are an array indexed by the server's `index`; bound it so a bad index cannot allocate. */
const MAX_TOOL_CALLS = 128;

/** Creates a client for one server with one keep-alive connection pool. */
export function createOpenAIClient(options: OpenAIClientOptions): OpenAIClient {
  const timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs;
  const settings: Settings = {
    model: options.model,
    firstByteTimeoutMs: options.firstByteTimeoutMs ?? timeoutMs,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
    timeoutMs,
    streamDeadlineMs: options.streamDeadlineMs ?? DEFAULTS.streamDeadlineMs,
    maxAnswerChars: options.maxAnswerChars ?? DEFAULTS.maxAnswerChars,
  };
  const maxBodyBytes = settings.maxAnswerChars * BODY_BYTES_PER_CHAR + BODY_OVERHEAD_BYTES;
  let ownAgent: Agent | undefined;
  let dispatcher: Dispatcher;
  if (options.dispatcher !== undefined) {
    dispatcher = options.dispatcher;
  } else {
    // One pool per backend: keep-alive connections are reused across calls to the same server.
    ownAgent = new Agent({
      connect: { timeout: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs },
      keepAliveTimeout: 10_000,
    });
    dispatcher = ownAgent;
  }

  const base = options.baseUrl.replace(/\/+$/, '');
  const chat = endpoint(`${base}/chat/completions`);
  const models = endpoint(`${base}/models`);
  const status = options.statusUrl ? endpoint(options.statusUrl) : null;

  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
  const streamHeaders = { ...headers, accept: 'text/event-stream' };
  const jsonHeaders = { ...headers, accept: 'application/json' };

  /** Sends one request under `guard` and returns the 2xx response; anything else throws a coded error. */
  async function send(guard: CallGuard, target: Endpoint, body: string | null, requestHeaders: Record<string, string>) {
    let response: Dispatcher.ResponseData;
    try {
      response = await request(target.url, {
        dispatcher,
        method: body === null ? 'GET' : 'POST',
        headers: requestHeaders,
        body,
        signal: guard.signal,
        // Our own timers decide (and name) every timeout; undici's would race them with other errors.
        headersTimeout: 0,
        bodyTimeout: 0,
      });
    } catch (error) {
      throw transportError(error, guard, 'before_headers', target);
    }
    if (guard.cause !== null) {
      discard(response.body);
      throw guard.failure();
    }
    const code = response.statusCode;
    if (code >= 200 && code < 300) return response;
    // Error bodies are never read: they may echo the prompt, and we must not log or forward them.
    discard(response.body);
    if (code >= 500) {
      throw new BackendUnavailableError('backend_unavailable', `${target.where} answered HTTP ${code}`, { status: code });
    }
    if (code >= 400) throw new BackendRequestError(code, `${target.where} rejected the request with HTTP ${code}`);
    throw new BackendProtocolError(`${target.where} answered unexpected HTTP ${code}`);
  }

  /** GET/POST and parse the JSON body with `schema`, under the non-streaming total timeout. */
  function callJson<T>(signal: AbortSignal, target: Endpoint, body: string | null, schema: z.ZodType<T>): Promise<T> {
    return guarded(signal, settings.timeoutMs, 'timeout', settings.firstByteTimeoutMs, async (guard) => {
      const response = await send(guard, target, body, jsonHeaders);
      guard.clearPhase();
      return parseJson(await readText(response, guard, target, maxBodyBytes, settings.maxAnswerChars), schema, target);
    });
  }

  /** A completion whose content is within the limit. */
  const checked = (result: ChatResult): ChatResult => {
    if (result.content.length > settings.maxAnswerChars) throw new AnswerTooLongError(settings.maxAnswerChars);
    return result;
  };

  return {
    complete(chatRequest, signal) {
      const body = requestBody(settings.model, chatRequest, false);
      return callJson(signal, chat, body, completionSchema).then(toChatResult).then(checked);
    },

    stream(chatRequest, { signal, onContent }: StreamOptions) {
      const body = requestBody(settings.model, chatRequest, true);
      return guarded(signal, settings.streamDeadlineMs, 'stream_deadline', settings.firstByteTimeoutMs, async (guard) => {
        const response = await send(guard, chat, body, streamHeaders);
        const contentType = headerValue(response.headers['content-type']);
        if (contentType.includes('application/json')) {
          // Some servers ignore `stream: true` and answer in one piece; that is still a valid answer.
          guard.clearPhase();
          const result = checked(toChatResult(parseJson(await readText(response, guard, chat, maxBodyBytes, settings.maxAnswerChars), completionSchema, chat)));
          if (result.content.length > 0) onContent(result.content);
          return result;
        }
        return await readEventStream(response.body, guard, settings.idleTimeoutMs, chat, onContent, settings.maxAnswerChars);
      });
    },

    listModels(signal) {
      return callJson(signal, models, null, modelsSchema).then((list) => list.data.map((entry) => entry.id));
    },

    async fetchStatus(signal): Promise<BackendStatusReport | null> {
      if (status === null) return null;
      const report = await callJson(signal, status, null, statusSchema);
      return { activeJobs: report.active_jobs, totalRequests: report.total_requests };
    },

    async close() {
      await ownAgent?.close();
    },
  };
}

interface Settings {
  model: string;
  firstByteTimeoutMs: number;
  idleTimeoutMs: number;
  timeoutMs: number;
  streamDeadlineMs: number;
  maxAnswerChars: number;
}

interface Endpoint {
  url: string;
  /** `host/path` for error messages: never the query string, never credentials. */
  where: string;
}

function endpoint(url: string): Endpoint {
  const parsed = new URL(url);
  return { url, where: `${parsed.host}${parsed.pathname}` };
}

function requestBody(model: string, chatRequest: ChatRequest, stream: boolean): string {
  // JSON.stringify drops the `undefined` members, so optional parameters are simply absent.
  return JSON.stringify({
    model,
    messages: chatRequest.messages,
    stream,
    tools: chatRequest.tools,
    tool_choice: chatRequest.toolChoice,
    max_tokens: chatRequest.maxTokens,
    temperature: chatRequest.temperature,
  });
}

function headerValue(value: string | string[] | undefined): string {
  return (Array.isArray(value) ? value[0] : value)?.toLowerCase() ?? '';
}

// ─── Deadlines and cancellation ──────────────────────────────────────────────────────────────────

/** Why a call's internal controller was aborted. */
type Cause = 'cancelled' | 'first_byte' | 'idle' | 'timeout' | 'stream_deadline' | 'drain';

/**
 * Owns one call's internal AbortController, its timers and its link to the caller's signal. Every
 * deadline and the caller's abort go through `trip`, which records the cause first and then aborts the
 * HTTP request, so undici destroys the socket (the server sees the client leave) and whatever undici
 * throws afterwards is reported as the recorded cause.
 */
class CallGuard {
  cause: Cause | null = null;
  private readonly controller = new AbortController();
  private readonly callerSignal: AbortSignal;
  private readonly deadline: NodeJS.Timeout;
  private phase: NodeJS.Timeout | null = null;
  private phaseCause: Cause | null = null;
  private readonly onCallerAbort = (): void => this.trip('cancelled');

  constructor(callerSignal: AbortSignal, deadlineMs: number, deadlineCause: Cause, firstByteMs: number) {
    this.callerSignal = callerSignal;
    callerSignal.addEventListener('abort', this.onCallerAbort, { once: true });
    this.deadline = setTimeout(() => this.trip(deadlineCause), deadlineMs);
    this.setPhase('first_byte', firstByteMs);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Replaces the phase timer (first byte → idle → drain). */
  setPhase(cause: Cause, ms: number): void {
    if (this.phase !== null) clearTimeout(this.phase);
    this.phaseCause = cause;
    this.phase = setTimeout(() => this.trip(cause), ms);
  }

  clearPhase(): void {
    if (this.phase !== null) clearTimeout(this.phase);
    this.phase = null;
    this.phaseCause = null;
  }

  /** Body bytes arrived: restarts the idle timer (and only that one: bytes are not an event). */
  touch(): void {
    if (this.phaseCause === 'idle') this.phase?.refresh();
  }

  trip(cause: Cause): void {
    if (this.cause !== null) return;
    this.cause = cause;
    this.controller.abort();
  }

  /** Aborts the request after a failure of our own, so the socket is not left half-read. */
  abandon(): void {
    if (!this.controller.signal.aborted) this.controller.abort();
  }

  dispose(): void {
    clearTimeout(this.deadline);
    this.clearPhase();
    this.callerSignal.removeEventListener('abort', this.onCallerAbort);
  }

  /** The coded error for the recorded cause. */
  failure(): SwitchboardError {
    switch (this.cause) {
      case 'cancelled':
        return new CancelledError();
      case 'stream_deadline':
        return new StreamDeadlineError();
      case 'first_byte':
        return new BackendUnavailableError('backend_timeout', 'no response from the backend within the first-byte timeout');
      case 'idle':
        return new BackendUnavailableError('backend_timeout', 'the backend stream went silent for longer than the idle timeout');
      case 'timeout':
        return new BackendUnavailableError('backend_timeout', 'the backend call took longer than its timeout');
      case 'drain':
      case null:
        return new BackendUnavailableError('backend_disconnected', 'the backend request was abandoned');
    }
  }
}

/** Runs `work` under a fresh guard; maps, cleans up, and always aborts the request on failure. */
async function guarded<T>(
  signal: AbortSignal,
  deadlineMs: number,
  deadlineCause: Cause,
  firstByteMs: number,
  work: (guard: CallGuard) => Promise<T>,
): Promise<T> {
  if (signal.aborted) throw new CancelledError();
  const guard = new CallGuard(signal, deadlineMs, deadlineCause, firstByteMs);
  try {
    const result = await work(guard);
    // The caller asked to stop while the last bytes were in flight: stopping wins.
    if (guard.cause === 'cancelled') throw guard.failure();
    return result;
  } catch (error) {
    guard.abandon();
    throw error;
  } finally {
    guard.dispose();
  }
}

/** Socket and undici error codes in words, for the log line that says why a backend is down. */
const SOCKET_ERRORS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed',
  UND_ERR_CONNECT_TIMEOUT: 'connect timeout',
  UND_ERR_HEADERS_TIMEOUT: 'no response headers in time',
  UND_ERR_BODY_TIMEOUT: 'the body stalled',
  UND_ERR_SOCKET: 'socket closed',
};

/** Maps an undici/socket error to a coded error; the guard's recorded cause takes precedence. */
function transportError(
  error: unknown,
  guard: CallGuard,
  stage: 'before_headers' | 'after_headers',
  target: Endpoint,
): SwitchboardError {
  if (guard.cause !== null) return guard.failure();
  if (error instanceof SwitchboardError) return error;
  const code = errorCode(error);
  const words = code !== undefined ? SOCKET_ERRORS[code] : undefined;
  const what = words !== undefined ? `${words}, ${code}` : `${errorName(error)}${code ? ` ${code}` : ''}`;
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new BackendUnavailableError('backend_timeout', `${target.where} timed out (${what})`, { cause: error });
  }
  if (stage === 'after_headers') {
    return new BackendUnavailableError('backend_disconnected', `${target.where} dropped the connection mid-response (${what})`, {
      cause: error,
    });
  }
  return new BackendUnavailableError('backend_unavailable', `${target.where} is unreachable (${what})`, { cause: error });
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // Happy-eyeballs connects fail with an AggregateError whose members carry the codes.
  if (error instanceof AggregateError) return errorCode(error.errors[0]);
  return undefined;
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

// ─── Bodies ──────────────────────────────────────────────────────────────────────────────────────

type Body = Dispatcher.ResponseData['body'];

/** Drops a body we will not read; the error listener keeps its late errors from going unhandled. */
function discard(body: Body): void {
  body.on('error', noop);
  body.destroy();
}

function noop(): void {}

/** The body as text, read up to `maxBytes`: a longer body is not read further (it is an answer too long). */
async function readText(response: Dispatcher.ResponseData, guard: CallGuard, target: Endpoint, maxBytes: number, maxChars: number): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  try {
    for await (const chunk of response.body) {
      const buffer = chunk as Buffer;
      bytes += buffer.byteLength;
      if (bytes > maxBytes) {
        response.body.destroy();
        throw new AnswerTooLongError(maxChars);
      }
      chunks.push(buffer);
    }
  } catch (error) {
    if (error instanceof AnswerTooLongError) throw error;
    throw transportError(error, guard, 'after_headers', target);
  }
  return Buffer.concat(chunks, bytes).toString('utf8');
}

function parseJson<T>(text: string, schema: z.ZodType<T>, target: Endpoint): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BackendProtocolError(`${target.where} answered with invalid JSON`);
  }
  const parsed = schema.safeParse(value);
  // zod's issues would quote values from the body: only their paths go into the message.
  if (!parsed.success) {
    const paths = parsed.error.issues.map((issue) => issue.path.join('.') || '(root)').slice(0, 5);
    throw new BackendProtocolError(`${target.where} answered with an unexpected shape at ${paths.join(', ')}`);
  }
  return parsed.data;
}

// ─── Response shapes ─────────────────────────────────────────────────────────────────────────────

const toolCallSchema = z.object({
  id: z.string().nullish(),
  function: z.object({ name: z.string(), arguments: z.string() }),
});

const completionSchema = z.object({
  choices: z
    .array(
      z.object({
        message: z.object({
          content: z.string().nullish(),
          tool_calls: z.array(toolCallSchema).nullish(),
        }),
        finish_reason: z.string().nullish(),
      }),
    )
    .min(1),
});

const modelsSchema = z.object({ data: z.array(z.object({ id: z.string() })) });

const statusSchema = z.object({
  active_jobs: z.number().int().nonnegative(),
  total_requests: z.number().int().nonnegative(),
});

function toChatResult(completion: z.infer<typeof completionSchema>): ChatResult {
  const [choice] = completion.choices;
  // Unreachable after `.min(1)`, but the type system cannot know that.
  if (choice === undefined) throw new BackendProtocolError('the completion has no choices');
  const toolCalls: ToolCall[] = (choice.message.tool_calls ?? []).map((call, index) => ({
    id: call.id ?? `call_${index}`,
    type: 'function',
    function: { name: call.function.name, arguments: call.function.arguments },
  }));
  return { content: choice.message.content ?? '', toolCalls, finishReason: choice.finish_reason ?? null };
}

// ─── Streaming ───────────────────────────────────────────────────────────────────────────────────

/**
 * Reads an SSE body to its end. Resolves at `[DONE]` (after letting the response finish) or at a clean
 * end after at least one event; rejects with a coded error otherwise. Listeners rather than
 * `for await` keep the hot path free of a promise per chunk.
 */
function readEventStream(
  body: Body,
  guard: CallGuard,
  idleTimeoutMs: number,
  target: Endpoint,
  onContent: (text: string) => void,
  maxAnswerChars: number,
): Promise<ChatResult> {
  return new Promise<ChatResult>((resolve, reject) => {
    const assembler = new StreamAssembler(target, maxAnswerChars);
    let sawEvent = false;
    let done = false;
    let settled = false;

    const finish = (error?: unknown): void => {
      if (settled) return;
      settled = true;
      body.off('data', onData);
      if (error === undefined) {
        try {
          assembler.flush(onContent);
          resolve(assembler.result());
        } catch (assembleError) {
          reject(assembleError);
        }
        return;
      }
      // Stop reading at once: undici aborts the request and closes the socket.
      body.destroy();
      reject(error);
    };

    const parser = new SseParser((event) => {
      // After a cancel or timeout the rest of an already received chunk is not delivered.
      if (done || guard.cause !== null) return;
      if (!sawEvent) {
        sawEvent = true;
        guard.setPhase('idle', idleTimeoutMs);
      }
      if (event.data === '[DONE]') {
        done = true;
        guard.setPhase('drain', Math.min(idleTimeoutMs, DRAIN_AFTER_DONE_MS));
        return;
      }
      assembler.add(event.data, onContent);
    }, { maxEventChars: maxAnswerChars * BODY_BYTES_PER_CHAR + BODY_OVERHEAD_BYTES });

    const onData = (chunk: Buffer): void => {
      guard.touch();
      try {
        parser.push(chunk);
      } catch (error) {
        // One event longer than any answer within the limit could take: the answer is too long.
        finish(error instanceof RangeError ? new AnswerTooLongError(maxAnswerChars) : error);
      }
    };

    body.on('data', onData);
    // Stays attached after settling, so errors from the destroyed body never go unhandled.
    body.on('error', (error) => {
      finish(done ? undefined : transportError(error, guard, 'after_headers', target));
    });
    body.on('end', () => {
      if (!done) {
        try {
          parser.end();
        } catch (error) {
          finish(error);
          return;
        }
      }
      if (done || assembler.events > 0) finish();
      else finish(new BackendProtocolError(`${target.where} ended the stream without any event`));
    });
    body.on('close', () => {
      finish(done ? undefined : transportError(new Error('closed'), guard, 'after_headers', target));
    });
  });
}

interface ToolSlot {
  id: string | undefined;
  name: string;
  arguments: string;
}

/**
 * Collects content and tool-call deltas. Each chunk is checked by hand instead of with zod: this runs
 * once per token for every open stream, and the few `typeof` checks cost a fraction of a schema parse.
 */
class StreamAssembler {
  events = 0;
  private content = '';
  /** A high surrogate that ended a delta: its low half may start the next one. */
  private pendingHigh = '';
  private finishReason: string | null = null;
  private readonly tools: Array<ToolSlot | undefined> = [];
  private readonly target: Endpoint;

  constructor(
    target: Endpoint,
    private readonly maxAnswerChars: number,
  ) {
    this.target = target;
  }

  add(data: string, onContent: (text: string) => void): void {
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      throw this.invalid('an SSE event that is not JSON');
    }
    if (!isRecord(chunk)) throw this.invalid('an SSE event that is not an object');
    const choices = chunk.choices;
    if (!Array.isArray(choices)) {
      throw this.invalid(chunk.error !== undefined ? 'an error event' : 'a chunk without choices');
    }
    this.events += 1;
    // `choices: []` is legal (e.g. a trailing usage chunk) and carries nothing for us.
    if (choices.length === 0) return;
    const choice: unknown = choices[0];
    if (!isRecord(choice)) throw this.invalid('a chunk with a malformed choice');

    const finishReason = choice.finish_reason;
    if (typeof finishReason === 'string') this.finishReason = finishReason;
    else if (finishReason != null) throw this.invalid('a chunk with a malformed finish_reason');

    const delta = choice.delta;
    if (delta == null) return;
    if (!isRecord(delta)) throw this.invalid('a chunk with a malformed delta');

    const content = delta.content;
    if (typeof content === 'string') {
      if (content.length > 0) this.addContent(content, onContent);
    } else if (content != null) {
      throw this.invalid('a chunk with non-text content');
    }

    const toolCalls = delta.tool_calls;
    if (toolCalls != null) {
      if (!Array.isArray(toolCalls)) throw this.invalid('a chunk with malformed tool_calls');
      for (let position = 0; position < toolCalls.length; position += 1) this.addToolDelta(toolCalls[position], position);
    }
  }

  /**
   * Passes content on as storable text (see `storable-text.ts`): a surrogate pair a server split across
   * two deltas is joined again rather than becoming two U+FFFD, and what is still lone becomes U+FFFD.
   */
  private addContent(content: string, onContent: (text: string) => void): void {
    let text = this.pendingHigh + content;
    this.pendingHigh = '';
    const last = text.charCodeAt(text.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) {
      this.pendingHigh = text.slice(-1);
      text = text.slice(0, -1);
    }
    if (text.length === 0) return;
    if (this.content.length + text.length > this.maxAnswerChars) throw new AnswerTooLongError(this.maxAnswerChars);
    text = storableText(text);
    this.content += text;
    onContent(text);
  }

  /** The end of the stream: a high surrogate still waiting for its pair is lone after all. */
  flush(onContent: (text: string) => void): void {
    if (this.pendingHigh === '') return;
    this.pendingHigh = '';
    this.content += '\uFFFD';
    onContent('\uFFFD');
  }

  private addToolDelta(delta: unknown, position: number): void {
    if (!isRecord(delta)) throw this.invalid('a malformed tool call delta');
    // `index` is required by OpenAI; a server that leaves it out sends whole calls, so use the position.
    const index = delta.index ?? position;
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= MAX_TOOL_CALLS) {
      throw this.invalid('a tool call delta with a bad index');
    }
    const slot = (this.tools[index] ??= { id: undefined, name: '', arguments: '' });
    const id = delta.id;
    if (typeof id === 'string' && id.length > 0) slot.id = id;
    else if (id != null) throw this.invalid('a tool call delta with a bad id');
    const fn = delta.function;
    if (fn == null) return;
    if (!isRecord(fn)) throw this.invalid('a tool call delta with a bad function');
    const { name, arguments: args } = fn;
    if (typeof name === 'string') {
      // The name arrives once, in the first delta; servers that repeat it must not double it.
      if (slot.name.length === 0) slot.name = name;
    } else if (name != null) {
      throw this.invalid('a tool call delta with a bad name');
    }
    if (typeof args === 'string') slot.arguments += args;
    else if (args != null) throw this.invalid('a tool call delta with bad arguments');
  }

  result(): ChatResult {
    const toolCalls: ToolCall[] = [];
    this.tools.forEach((slot, index) => {
      if (slot === undefined) return;
      if (slot.name.length === 0) throw this.invalid('a tool call without a name');
      toolCalls.push({
        id: slot.id ?? `call_${index}`,
        type: 'function',
        function: { name: slot.name, arguments: slot.arguments },
      });
    });
    return { content: this.content, toolCalls, finishReason: this.finishReason };
  }

  private invalid(what: string): BackendProtocolError {
    return new BackendProtocolError(`${this.target.where} sent ${what}`);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
