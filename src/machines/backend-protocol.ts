import type { AnyActorRef } from 'xstate';
import type { ChatRequest, ChatResult } from '../actors/inference/types.js';
import type { ErrorInfo } from '../errors.js';

/**
 * The message protocol between a requester actor and a backend actor.
 *
 * A requester sends `infer.request` with itself as `replyTo` and gets, in order:
 *   `infer.queued {position}` when it must wait (1-based, its place on arrival) and again when it moves
 *   to a place that matters (`queue-position.ts`: the last three, and milestones such as 100 or 10 — not
 *   every move, which with n waiting would be n messages per dispatch),
 *   `infer.started` once a slot serves it,
 *   zero or more `infer.chunk {text}` (streaming requests only),
 *   and exactly one terminal message: `infer.done {result}`, `infer.error {error}` or `infer.cancelled`.
 * It may send `infer.cancel` at any time; after a terminal message that has no effect. A requester that
 * stops has its request cancelled by the backend, queued or running.
 */

export type Priority = 'foreground' | 'background';
export type RequestKind = 'complete' | 'stream';

export interface InferRequestEvent {
  type: 'infer.request';
  requestId: string;
  priority: Priority;
  kind: RequestKind;
  request: ChatRequest;
  replyTo: AnyActorRef;
}

export interface InferCancelEvent {
  type: 'infer.cancel';
  requestId: string;
}

/** Events a backend actor accepts from requesters. */
export type BackendRequesterEvent = InferRequestEvent | InferCancelEvent;

/** Timing of a served request, in milliseconds. */
export interface RequestTiming {
  queuedMs: number;
  firstByteMs: number | null;
  totalMs: number;
}

export type BackendReply =
  | { type: 'infer.queued'; requestId: string; position: number }
  | { type: 'infer.started'; requestId: string }
  | { type: 'infer.chunk'; requestId: string; text: string }
  | { type: 'infer.done'; requestId: string; result: ChatResult; timing: RequestTiming }
  | { type: 'infer.error'; requestId: string; error: ErrorInfo }
  | { type: 'infer.cancelled'; requestId: string };

/** The terminal replies. */
export type BackendTerminalReply = Extract<BackendReply, { type: 'infer.done' | 'infer.error' | 'infer.cancelled' }>;
