/**
 * What a tool call returns, and the helpers around it. A call never throws: failures are data with a
 * contract-safe `reason` (`[a-z0-9_]`) and a sentence the user may read.
 */
import { sanitizeReason } from '../../errors.js';

/** A document a result is based on, for the job's `sources` event. */
export interface ToolSource {
  id: string;
  title: string;
}

/** A successful call: `data` for the model to phrase, `summary` as plain text when phrasing fails. */
export interface ToolSuccess {
  ok: true;
  data: unknown;
  summary: string;
  /** Documents the result came from (document tools only). */
  sources?: ToolSource[];
}

/**
 * A failed call. Reasons: `unknown_tool`, `bad_tool_params`, `tool_not_configured`,
 * `tool_unavailable`, `email_send_refused`, `not_found`, `tool_timeout`, `tool_failed`, `cancelled`.
 */
export interface ToolFailure {
  ok: false;
  reason: string;
  /** Readable, localized; never a stack or a message body. */
  message: string;
}

export type ToolResult = ToolSuccess | ToolFailure;

/** The default cap of a tool payload handed to a model (DESIGN §6). */
export const TOOL_PAYLOAD_MAX_CHARS = 2_000;

/** Appended where a payload or text was cut. */
export const TRUNCATED_MARKER = '…(truncated)';

/** Builds a failure with a sanitized reason. */
export function toolFailure(reason: string, message: string): ToolFailure {
  return { ok: false, reason: sanitizeReason(reason), message };
}

/**
 * `data` as JSON for the phrasing prompt, cut to `max` characters with {@link TRUNCATED_MARKER} after
 * the cut. Non-ASCII stays readable (no `\uXXXX` escapes); `undefined` becomes `null`.
 */
export function toolPayload(data: unknown, max: number = TOOL_PAYLOAD_MAX_CHARS): string {
  const json = JSON.stringify(data) ?? 'null';
  return json.length > max ? `${cutText(json, max)}${TRUNCATED_MARKER}` : json;
}

/** The first `max` UTF-16 units of `text`, one fewer when the cut would split a surrogate pair. */
export function cutText(text: string, max: number): string {
  if (text.length <= max) return text;
  const code = text.charCodeAt(max - 1);
  // A high surrogate at the end would leave half a character (an emoji, a rare Hanja) behind.
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

/** The `{id, title}` items of a result for a `sources` event; none for failures and non-document tools. */
export function sourcesOf(result: ToolResult): ToolSource[] {
  return result.ok ? (result.sources ?? []) : [];
}

/**
 * Thrown by an operation for a failure the user should read about in words (a server that refuses):
 * the registry answers `reason` with `userMessage` and reports the error once, with `detail` (safe to
 * log: no credentials, no message bodies), to its `onError`.
 */
export class ToolError extends Error {
  override readonly name = 'ToolError';
  constructor(
    readonly reason: string,
    readonly userMessage: string,
    readonly detail: string,
  ) {
    super(detail);
  }
}
