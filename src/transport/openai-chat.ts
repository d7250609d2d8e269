import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { toErrorInfo } from '../errors.js';
import type { JobEvent } from '../jobs/job-event.js';
import { SubmitRejected, type Runtime, type Unsubscribe } from '../runtime/runtime.js';
import { sendJson } from './http-server.js';
import { isOpenAiError, parseChatRequest, sendOpenAiError, type ChatRequest, type OpenAiError } from './openai-api.js';

/** The response header that names the job a completion ran as. */
export const JOB_ID_HEADER = 'x-switchboard-job-id';

/**
 * Reasons that mean the model server could not answer: 503 `backend_unavailable` before any byte. A
 * connection the server dropped mid-answer (`backend_disconnected`) is one of them, like a refused one.
 */
const BACKEND_REASONS = new Set(['backend_unavailable', 'backend_timeout', 'backend_disconnected', 'model_missing', 'stream_deadline_exceeded']);

/**
 * `POST /v1/chat/completions` for an authenticated `owner`: reads and checks the body, submits the job
 * (the last message, its history from the request, `source: "openai"`), and answers its events as one
 * `chat.completion` or as SSE `chat.completion.chunk`s ending with `data: [DONE]`. Every chunk carries the
 * requested model name; nothing of the backend (name, model, `usage`) is passed on. Before the first
 * byte a failure is a status (503 `backend_unavailable` for a model server that cannot answer); after
 * it, one error chunk ends the stream without `[DONE]`. A client that goes away cancels the job (which
 * aborts its backend request). Message text is never logged.
 */
export function handleChatCompletion(req: IncomingMessage, res: ServerResponse, options: { runtime: Runtime; owner: string; log: Logger }): void {
  const { runtime, owner, log } = options;
  const limits = runtime.config.limits;
  // JSON may escape a character to 6 bytes; beyond that a body cannot be within the caps.
  const maxBytes = limits.totalChars * 6 + 64 * 1024;
  const parts: Buffer[] = [];
  let size = 0;
  let refused = false;
  req.on('data', (chunk: Buffer) => {
    if (refused) return;
    size += chunk.length;
    if (size > maxBytes) {
      refused = true;
      res.setHeader('connection', 'close');
      sendOpenAiError(res, invalidBody(413, 'body_too_large', `the body is over ${maxBytes} bytes`));
      req.resume();
      return;
    }
    parts.push(chunk);
  });
  req.on('end', () => {
    if (refused) return;
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(parts).toString('utf8'));
    } catch {
      return sendOpenAiError(res, invalidBody(400, 'bad_request', 'the body is not valid JSON'));
    }
    const parsed = parseChatRequest(body, Object.keys(runtime.config.modes), limits);
    if (isOpenAiError(parsed)) return sendOpenAiError(res, parsed);
    void run(parsed, res, runtime, owner, log);
  });
  req.on('error', () => res.destroy());
}

async function run(request: ChatRequest, res: ServerResponse, runtime: Runtime, owner: string, log: Logger): Promise<void> {
  if (request.mode !== 'auto') {
    // A mode goes straight to one backend: one that is down is said at once.
    const backend = runtime.status().backends[runtime.config.modes[request.mode]!];
    if (backend?.state === 'down') return sendBackendUnavailable(res, (backend as { reason?: string }).reason ?? 'backend_unavailable');
  }
  let jobId: string;
  try {
    ({ jobId } = await runtime.submit({ text: request.text, history: request.history, mode: request.mode, source: 'openai', owner, stateless: true }));
  } catch (error) {
    return sendOpenAiError(res, submitError(error));
  }
  if (res.destroyed) {
    void runtime.cancel(jobId, owner);
    return;
  }
  res.setHeader(JOB_ID_HEADER, jobId);
  const id = `chatcmpl-${jobId}`;
  const created = Math.floor(Date.now() / 1000);
  const chunk = (delta: Record<string, unknown>, finishReason: string | null): string =>
    `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: request.model, choices: [{ index: 0, delta, finish_reason: finishReason }] })}\n\n`;
  let answer = '';
  let ended = false;
  let unsubscribe: Unsubscribe | null = null;
  const startStream = (): void => {
    if (res.headersSent) return;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    res.write(chunk({ role: 'assistant', content: '' }, null));
  };
  const finish = (): void => {
    ended = true;
    unsubscribe?.();
  };
  res.on('close', () => {
    if (ended) return;
    finish();
    void runtime.cancel(jobId, owner).catch((error: unknown) => log.warn({ jobId, reason: toErrorInfo(error).reason }, 'could not cancel an abandoned completion'));
  });
  const onEvent = (event: JobEvent): void => {
    if (ended || res.destroyed) return;
    if (event.event === 'result') {
      const content = String(event.data.content ?? '');
      if (!request.stream) answer += content;
      else {
        startStream();
        res.write(chunk({ content }, null));
      }
      return;
    }
    if (event.event === 'done') {
      finish();
      if (request.stream) {
        startStream();
        res.end(`${chunk({}, 'stop')}data: [DONE]\n\n`);
      } else {
        sendJson(res, 200, {
          id,
          object: 'chat.completion',
          created,
          model: request.model,
          choices: [{ index: 0, message: { role: 'assistant', content: answer }, finish_reason: 'stop' }],
        });
      }
      return;
    }
    if (event.event === 'error' || event.event === 'cancelled') {
      finish();
      const reason = event.event === 'cancelled' ? 'cancelled' : String(event.data.reason ?? 'internal');
      const message = event.event === 'cancelled' ? 'the job was cancelled' : String(event.data.message ?? '');
      if (!res.headersSent) {
        if (BACKEND_REASONS.has(reason)) return sendBackendUnavailable(res, reason, message);
        return sendJson(res, reason === 'store_unavailable' ? 503 : 500, { error: { type: 'server_error', error_reason: reason, message } });
      }
      // Streaming had started: one error chunk, and no [DONE], so a client cannot take it for an answer.
      res.end(`data: ${JSON.stringify({ error: { type: BACKEND_REASONS.has(reason) ? 'backend_unavailable' : 'server_error', error_reason: reason, message } })}\n\n`);
    }
  };
  try {
    unsubscribe = await runtime.subscribe(jobId, owner, 0, onEvent);
  } catch (error) {
    finish();
    if (!res.headersSent) sendOpenAiError(res, submitError(error));
    else res.destroy();
    return;
  }
  if (ended) unsubscribe?.();
}

function sendBackendUnavailable(res: ServerResponse, reason: string, message = 'the model server cannot answer now'): void {
  sendJson(res, 503, { error: { type: 'backend_unavailable', error_reason: reason, message } });
}

function submitError(error: unknown): OpenAiError {
  if (error instanceof SubmitRejected) {
    const status = { bad_request: 400, too_large: 413, unknown_mode: 400, unknown_conversation: 400, rate_limited: 429, shutting_down: 503 }[error.code];
    const code = error.code === 'unknown_mode' ? 'unknown_model' : error.code;
    return invalidBody(status, code, error.message);
  }
  const { reason } = toErrorInfo(error);
  return { status: 503, body: { error: { type: 'server_error', code: reason, message: 'the gateway cannot take requests now' } } };
}

function invalidBody(status: number, code: string, message: string): OpenAiError {
  return { status, body: { error: { type: 'invalid_request_error', code, message } } };
}
