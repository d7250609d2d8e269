import { z } from 'zod';
import type { JobEventName } from '../jobs/job-event.js';
import type { StatusBody } from '../runtime/runtime.js';

/**
 * The frames of the WebSocket protocol (DESIGN §4, a public contract): zod schemas for what clients
 * send, plain types for what the server sends, and `parseClientFrame`, the one door through which a
 * raw frame becomes a typed value.
 */

/** Job ids, conversation ids and client message ids are opaque to clients, but never unbounded. */
export const MAX_ID_CHARS = 128;
/** Mode names are `[a-z0-9_-]{1,32}` in the config; a little slack so the runtime can say "unknown mode". */
const MAX_MODE_CHARS = 64;

/** PostgreSQL text cannot hold U+0000: an id with one could never be stored or found. */
const id = z
  .string()
  .min(1)
  .max(MAX_ID_CHARS)
  .refine((value) => !value.includes('\u0000'), 'must not contain U+0000');

/*
 * Objects are strict: a misspelt key (`afterseq`, `conversationID`) would otherwise be dropped silently
 * and the client would get a full replay or a new conversation instead of an error it can act on.
 * `text` has no static maximum: its limit is `config.limits.messageChars`, checked in `parseClientFrame`.
 */
export const chatFrameSchema = z.strictObject({
  type: z.literal('chat'),
  text: z.string().min(1),
  conversationId: id.optional(),
  mode: z.string().min(1).max(MAX_MODE_CHARS).optional(),
  clientMsgId: id.optional(),
});

export const cancelFrameSchema = z.strictObject({ type: z.literal('cancel'), jobId: id });

/** Job event seqs are a PostgreSQL `integer`: an `afterSeq` beyond it could never be compared there. */
export const MAX_SEQ = 2_147_483_647;

export const subscribeFrameSchema = z.strictObject({
  type: z.literal('subscribe'),
  jobId: id,
  afterSeq: z.number().int().min(0).max(MAX_SEQ, `must be at most ${MAX_SEQ}`).optional(),
});

export const statusFrameSchema = z.strictObject({ type: z.literal('status') });

export const pingFrameSchema = z.strictObject({ type: z.literal('ping') });

/** Every frame a client may send. */
export const clientFrameSchema = z.discriminatedUnion('type', [
  chatFrameSchema,
  cancelFrameSchema,
  subscribeFrameSchema,
  statusFrameSchema,
  pingFrameSchema,
]);

export type ChatFrame = z.infer<typeof chatFrameSchema>;
export type CancelFrame = z.infer<typeof cancelFrameSchema>;
export type SubscribeFrame = z.infer<typeof subscribeFrameSchema>;
export type ClientFrame = z.infer<typeof clientFrameSchema>;
export type ClientFrameType = ClientFrame['type'];

/** The `type` of every frame a client may send. */
export const CLIENT_FRAME_TYPES: readonly ClientFrameType[] = ['chat', 'cancel', 'subscribe', 'status', 'ping'];

/** The codes of `error` frames; clients branch on them, so the set is closed. */
export const WS_ERROR_CODES = ['bad_request', 'too_large', 'unknown_job', 'unknown_conversation', 'rate_limited', 'store_unavailable'] as const;
export type WsErrorCode = (typeof WS_ERROR_CODES)[number];

/** `chat` was taken: the job exists and its events follow. */
export interface AcceptedFrame {
  type: 'accepted';
  jobId: string;
  conversationId: string;
  clientMsgId?: string;
}

/** One numbered job event; `seq` is 1, 2, 3, … per job and the terminal event is last. */
export interface EventFrame {
  type: 'event';
  jobId: string;
  seq: number;
  event: JobEventName;
  data: Record<string, unknown>;
  /** ISO 8601. */
  at: string;
}

/** The same body as `GET /status`. */
export type StatusFrame = { type: 'status' } & StatusBody;

export interface PongFrame {
  type: 'pong';
}

/** A frame was refused; the connection stays open. */
export interface ErrorFrame {
  type: 'error';
  code: WsErrorCode;
  message: string;
  /** The refused chat's `clientMsgId`, when it had one. */
  clientMsgId?: string;
}

/** Every frame the server sends. */
export type ServerFrame = AcceptedFrame | EventFrame | StatusFrame | PongFrame | ErrorFrame;

/** The `type` of every frame the server sends (the docs test checks each is documented). */
export const SERVER_FRAME_TYPES = ['accepted', 'event', 'status', 'pong', 'error'] as const satisfies readonly ServerFrame['type'][];
/** `true` only when the list above names every server frame type: a new one fails to compile here. */
export const SERVER_FRAME_TYPES_COMPLETE: [Exclude<ServerFrame['type'], (typeof SERVER_FRAME_TYPES)[number]>] extends [never] ? true : never = true;

/** The limits a frame is checked against before it is parsed further. */
export interface FrameLimits {
  /** Bytes of the raw frame. */
  maxFrameBytes: number;
  /** Characters of a chat `text` (`config.limits.messageChars`). */
  messageChars: number;
}

export type ParsedClientFrame =
  | { ok: true; frame: ClientFrame }
  | {
      ok: false;
      code: Extract<WsErrorCode, 'bad_request' | 'too_large'>;
      message: string;
      /** The refused chat's `clientMsgId`, when one could be read: the reply names it. */
      clientMsgId?: string;
    };

/** Error messages quote client input (keys, type names) at most this long, so a reply never echoes a flood. */
const MAX_MESSAGE_CHARS = 200;

/**
 * Turns one raw text frame into a typed client frame, or says why not: `too_large` for a frame over
 * `maxFrameBytes` or a chat text over `messageChars`, `bad_request` for anything that is not JSON or not
 * one of the frame shapes. The size is checked first so an oversized frame is never parsed.
 */
export function parseClientFrame(raw: Buffer | string, limits: FrameLimits): ParsedClientFrame {
  const bytes = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.byteLength;
  if (bytes > limits.maxFrameBytes) {
    return { ok: false, code: 'too_large', message: `frame is ${bytes} bytes; the limit is ${limits.maxFrameBytes}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch {
    return { ok: false, code: 'bad_request', message: 'frame is not JSON' };
  }
  const parsed = clientFrameSchema.safeParse(json);
  if (!parsed.success) {
    const clientMsgId = readableClientMsgId(json);
    return { ok: false, code: 'bad_request', message: describeProblem(json, parsed.error), ...(clientMsgId === undefined ? {} : { clientMsgId }) };
  }
  const frame = parsed.data;
  if (frame.type === 'chat' && frame.text.length > limits.messageChars) {
    return {
      ok: false,
      code: 'too_large',
      message: `text is ${frame.text.length} characters; the limit is ${limits.messageChars}`,
      ...(frame.clientMsgId === undefined ? {} : { clientMsgId: frame.clientMsgId }),
    };
  }
  return { ok: true, frame };
}

/** The `clientMsgId` of a refused frame, when it is itself a valid id. */
function readableClientMsgId(json: unknown): string | undefined {
  const value = typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>)['clientMsgId'] : undefined;
  return id.safeParse(value).success ? (value as string) : undefined;
}

/** One readable line for the first problem: which field, and what was expected. */
function describeProblem(json: unknown, error: z.ZodError): string {
  const isObject = typeof json === 'object' && json !== null && !Array.isArray(json);
  if (!isObject) return 'frame must be a JSON object with a "type"';
  const type = (json as Record<string, unknown>).type;
  if (typeof type !== 'string' || !(CLIENT_FRAME_TYPES as readonly string[]).includes(type)) {
    return `unknown frame type; expected one of: ${CLIENT_FRAME_TYPES.join(', ')}`;
  }
  const issue = error.issues[0];
  if (issue === undefined) return `invalid ${type} frame`;
  const where = issue.path.length > 0 ? issue.path.join('.') : type;
  return `invalid ${type} frame: ${where}: ${issue.message}`.slice(0, MAX_MESSAGE_CHARS);
}
