import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config/config-schema.js';
import type { Logger } from 'pino';
import type { Runtime } from '../runtime/runtime.js';
import { createAuthenticator } from './authenticator.js';
import { sendJson } from './http-server.js';
import { handleChatCompletion } from './openai-chat.js';

/** The model name that runs the whole job pipeline (classifier, tools, reasoner). */
export const AUTO_MODEL = 'auto';

/** An OpenAI-shaped error body: `{"error":{"type","code","message"}}`. */
export interface OpenAiError {
  status: number;
  body: { error: { type: string; code: string; message: string } };
}

/** One turn of a request's history, as the job pipeline takes it. */
export interface ChatTurn {
  role: 'user' | 'assistant';
  content: string;
}

/** A `POST /v1/chat/completions` body that passed every check at the edge. */
export interface ChatRequest {
  /** The requested model name, echoed in every answer (never a backend's name or model). */
  model: string;
  /** `auto`, or the mode (a key of `config.modes`) the request goes straight to. */
  mode: string;
  /** The last message: the job's message. */
  text: string;
  /** The turns before it, oldest first. */
  history: ChatTurn[];
  stream: boolean;
}

export interface ChatRequestLimits {
  messageChars: number;
  turns: number;
  totalChars: number;
}

/**
 * Checks a parsed `POST /v1/chat/completions` body against the contract (DESIGN §5): `model` is `auto` or
 * a mode name (else 400 `unknown_model`); `role: "system"` (or OpenAI's newer `developer`) is 422; the
 * last message must be the user's; a message over `messageChars` or a conversation over `totalChars` is
 * 413, more than `turns` turns of history is 422. `content` is a string or an array of text parts.
 * Messages are never echoed in an error (they may be private).
 */
export function parseChatRequest(body: unknown, modes: readonly string[], limits: ChatRequestLimits): ChatRequest | OpenAiError {
  if (!isObject(body)) return invalid(400, 'bad_request', 'the body must be a JSON object');
  const { model, messages, stream } = body;
  if (typeof model !== 'string' || model.length === 0) return invalid(400, 'bad_request', '"model" must be a non-empty string');
  if (model !== AUTO_MODEL && !modes.includes(model)) {
    return invalid(400, 'unknown_model', `unknown model; expected "${AUTO_MODEL}" or one of the modes (${modes.join(', ')})`);
  }
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean') return invalid(400, 'bad_request', '"stream" must be a boolean');
  if (!Array.isArray(messages) || messages.length === 0) return invalid(400, 'bad_request', '"messages" must be a non-empty array');
  const turns: ChatTurn[] = [];
  let total = 0;
  for (const [index, message] of messages.entries()) {
    if (!isObject(message)) return invalid(400, 'bad_request', `messages[${index}] must be an object`);
    const { role } = message;
    if (role === 'system' || role === 'developer') {
      return invalid(422, 'system_role_refused', `messages[${index}]: role "${role}" is not accepted; the gateway sets the system prompt`);
    }
    if (role !== 'user' && role !== 'assistant') return invalid(400, 'bad_request', `messages[${index}].role must be "user" or "assistant"`);
    const content = textOf(message.content);
    if (content === null) return invalid(400, 'bad_request', `messages[${index}].content must be a string or an array of text parts`);
    if (content.includes('\u0000')) return invalid(400, 'bad_request', `messages[${index}].content holds U+0000`);
    if (content.length > limits.messageChars) {
      return invalid(413, 'message_too_long', `messages[${index}] has ${content.length} characters; the limit is ${limits.messageChars}`);
    }
    total += content.length;
    turns.push({ role, content });
  }
  const last = turns.pop()!;
  if (last.role !== 'user') return invalid(400, 'bad_request', 'the last message must have role "user"');
  if (turns.length > limits.turns) {
    return invalid(422, 'too_many_turns', `the history has ${turns.length} turns; the limit is ${limits.turns}`);
  }
  if (total > limits.totalChars) {
    return invalid(413, 'conversation_too_long', `the messages have ${total} characters together; the limit is ${limits.totalChars}`);
  }
  return { model, mode: model, text: last.content, history: turns, stream: stream === true };
}

export function isOpenAiError(value: ChatRequest | OpenAiError): value is OpenAiError {
  return 'status' in value;
}

/** The body of `GET /v1/models`: `auto` and every mode, never a backend's name or model. */
export function modelList(config: Config, created: number) {
  return {
    object: 'list',
    data: [AUTO_MODEL, ...Object.keys(config.modes)].map((id) => ({ id, object: 'model', created, owned_by: 'switchboard' })),
  };
}

/** The OpenAI-compatible routes under `/v1`. */
export interface OpenAiApi {
  /** Answers `req` when it is one of the API's routes and returns true; false leaves it to the caller. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean;
}

/**
 * The OpenAI-compatible API (DESIGN §5). With `auth.tokens` set every route needs the bearer token: 401
 * with a one-line JSON body otherwise: `GET /v1/models` and `POST /v1/chat/completions`.
 */
export function createOpenAiApi(options: { config: Config; runtime: Runtime; log: Logger }): OpenAiApi {
  const { config, runtime, log } = options;
  const authenticate = createAuthenticator(config.auth.tokens);
  const created = Math.floor(Date.now() / 1000);
  return {
    handle(req, res, path) {
      const method = ROUTES[path];
      if (method === undefined) return false;
      if (req.method !== method) {
        sendOpenAiError(res, invalid(405, 'method_not_allowed', `${req.method} is not allowed here; use ${method}`), { allow: method });
        return true;
      }
      const owner = authenticate(req, new URL(req.url ?? '/', 'http://localhost'));
      if (owner === null) {
        sendOpenAiError(res, { status: 401, body: { error: { type: 'authentication_error', code: 'unauthorized', message: 'a valid bearer token is required' } } }, { 'www-authenticate': 'Bearer' });
        return true;
      }
      if (path === '/v1/models') sendJson(res, 200, modelList(config, created));
      else handleChatCompletion(req, res, { runtime, owner, log });
      return true;
    },
  };
}

export function sendOpenAiError(res: ServerResponse, error: OpenAiError, headers: Record<string, string> = {}): void {
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  sendJson(res, error.status, error.body);
}

const ROUTES: Record<string, string> = { '/v1/models': 'GET', '/v1/chat/completions': 'POST' };

function invalid(status: number, code: string, message: string): OpenAiError {
  return { status, body: { error: { type: 'invalid_request_error', code, message } } };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A message's text: a string, or the concatenation of an array of `{type:"text",text}` parts. */
function textOf(content: unknown): string | null {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return null;
  let text = '';
  for (const part of content) {
    if (!isObject(part) || part.type !== 'text' || typeof part.text !== 'string') return null;
    text += part.text;
  }
  return text;
}
