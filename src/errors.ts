/**
 * The one registry of coded errors. Every failure that crosses an actor boundary is one of these
 * classes; machines branch on `code`/`retryable`, users only ever see the sanitized `reason`.
 */

const REASON_PATTERN = /^[a-z0-9_]{1,64}$/;

/** Turns any string into a contract-safe reason (`[a-z0-9_]{1,64}`); empty input becomes `internal`. */
export function sanitizeReason(raw: string): string {
  if (REASON_PATTERN.test(raw)) return raw;
  const cleaned = raw
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, 64);
  return cleaned.length > 0 ? cleaned : 'internal';
}

/** What travels in events and over the wire: plain data, no stack, no message bodies. */
export interface ErrorInfo {
  code: string;
  reason: string;
  retryable: boolean;
  message: string;
}

export abstract class SwitchboardError extends Error {
  abstract readonly code: string;
  abstract readonly retryable: boolean;
  readonly reason: string;

  constructor(reason: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = sanitizeReason(reason);
    this.name = new.target.name;
  }

  toInfo(): ErrorInfo {
    return { code: this.code, reason: this.reason, retryable: this.retryable, message: this.message };
  }
}

/**
 * The server could not be used: refused, DNS failure, timeouts, 5xx, connection dropped.
 * Reasons: `backend_unavailable`, `backend_timeout`, `backend_disconnected`.
 */
export class BackendUnavailableError extends SwitchboardError {
  readonly code = 'backend_unavailable';
  readonly retryable = true;
  /** HTTP status when the server answered with one. */
  readonly status: number | undefined;
  constructor(reason: string, message: string, options?: { cause?: unknown; status?: number }) {
    super(reason, message, options);
    this.status = options?.status;
  }
}

/** The wall-clock deadline of a stream (`streamDeadlineMs`) passed. */
export class StreamDeadlineError extends SwitchboardError {
  readonly code = 'stream_deadline_exceeded';
  readonly retryable = false;
  constructor(message = 'the stream took longer than its deadline') {
    super('stream_deadline_exceeded', message);
  }
}

/** The server refused the request as malformed (4xx): the caller's error, not the server's health. */
export class BackendRequestError extends SwitchboardError {
  readonly code = 'backend_rejected';
  readonly retryable = false;
  readonly status: number;
  constructor(status: number, message: string) {
    super('backend_rejected', message);
    this.status = status;
  }
}

/** The server answered with something that is not the OpenAI protocol (bad JSON, bad SSE). */
export class BackendProtocolError extends SwitchboardError {
  readonly code = 'backend_protocol_error';
  readonly retryable = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super('backend_protocol_error', message, options);
  }
}

/** The model's answer is longer than `limits.answerChars`: it is not read further. */
export class AnswerTooLongError extends SwitchboardError {
  readonly code = 'answer_too_long';
  readonly retryable = false;
  constructor(maxChars: number) {
    super('answer_too_long', `the answer is longer than ${maxChars} characters`);
  }
}

/** The request was cancelled by its requester. */
export class CancelledError extends SwitchboardError {
  readonly code = 'cancelled';
  readonly retryable = false;
  constructor(message = 'cancelled') {
    super('cancelled', message);
  }
}

/** Anything unexpected, reduced to a safe shape. */
export class InternalError extends SwitchboardError {
  readonly code = 'internal';
  readonly retryable = false;
  constructor(message = 'internal error', options?: { cause?: unknown }) {
    super('internal', message, options);
  }
}

/** Maps any thrown value to plain `ErrorInfo` that is safe to send to a client. */
export function toErrorInfo(error: unknown): ErrorInfo {
  if (error instanceof SwitchboardError) return error.toInfo();
  return new InternalError().toInfo();
}

/** True for errors that say the backend itself is unhealthy (used by fallback and health). */
export function isBackendUnavailable(info: Pick<ErrorInfo, 'code'>): boolean {
  return info.code === 'backend_unavailable' || info.code === 'stream_deadline_exceeded';
}
