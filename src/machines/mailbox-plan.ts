import type { AnyActorRef } from 'xstate';
import type { ChatRequest, ChatResult } from '../actors/inference/types.js';
import type { ErrorInfo } from '../errors.js';
import type { BackendReply, InferRequestEvent, RequestKind } from './backend-protocol.js';
import { announcesMove } from './queue-position.js';
import { positionOf, servingOrder, takeNext, type RequestQueue } from './request-queue.js';

/**
 * One of a backend's `concurrency` slots. `running` serves a request; `draining` holds the slot while an
 * aborted request settles, so the next request never overlaps it on a single-slot server.
 */
export type Slot =
  | { status: 'idle' }
  | {
      status: 'running' | 'draining';
      requestId: string;
      replyTo: AnyActorRef;
      /** `performance.now()` times, for the reply's timing. */
      enqueuedAt: number;
      startedAt: number;
      firstByteAt: number | null;
    };

/** A slot that holds a request. */
export type BusySlot = Exclude<Slot, { status: 'idle' }>;

/** The part of a backend's context the mailbox owns. */
export interface MailboxState {
  queue: RequestQueue;
  slots: readonly Slot[];
}

/** Commands to a slot's `callBackend` actor, which performs one HTTP call at a time. */
export type CallCommand =
  | { type: 'call.start'; requestId: string; kind: RequestKind; request: ChatRequest; replyTo: AnyActorRef }
  | { type: 'call.abort'; requestId: string };

/** What a slot's `callBackend` actor reports, each naming its slot and request. */
export type CallEvent =
  | { type: 'call.firstByte'; slot: number; requestId: string; at: number }
  | { type: 'call.progress'; slot: number; requestId: string }
  | { type: 'call.done'; slot: number; requestId: string; result: ChatResult; at: number }
  | { type: 'call.failed'; slot: number; requestId: string; error: ErrorInfo };

/** A message the machine sends as a consequence of a mailbox change. */
export interface Outgoing {
  /** A slot index (its call actor) or an actor. */
  to: number | AnyActorRef;
  event: CallCommand | BackendReply;
}

export interface MailboxPlan {
  state: MailboxState;
  out: Outgoing[];
}

/** How full the slots are: the mailbox's state name. */
export function mailboxStatus(state: MailboxState): 'idle' | 'serving' | 'saturated' {
  let busy = 0;
  for (const slot of state.slots) if (slot.status !== 'idle') busy++;
  if (busy === 0) return 'idle';
  return busy === state.slots.length ? 'saturated' : 'serving';
}

export function countBusySlots(state: MailboxState): number {
  let busy = 0;
  for (const slot of state.slots) if (slot.status !== 'idle') busy++;
  return busy;
}

/** Finds the slot serving a request (running or draining). */
export function slotOf(state: MailboxState, requestId: string): number {
  return state.slots.findIndex((slot) => slot.status !== 'idle' && slot.requestId === requestId);
}

/**
 * Tells the waiting requests whose place changed to one that matters (see `queue-position.ts`) after
 * `moved` requests ahead of them left the line (served or cancelled). `from` is the 1-based place where
 * the line changed: only those behind it moved.
 */
export function announceMoves(queue: RequestQueue, now: number, maxBackgroundWaitMs: number, moved: number, from: number, out: Outgoing[]): void {
  if (moved === 0) return;
  const order = servingOrder(queue, now, maxBackgroundWaitMs);
  for (let index = from - 1; index < order.length; index++) {
    const { event } = order[index] as (typeof order)[number];
    const place = index + 1;
    if (announcesMove(place + moved, place)) out.push({ to: event.replyTo, event: { type: 'infer.queued', requestId: event.requestId, position: place } });
  }
}

/**
 * Fills idle slots from the queue; the requests still waiting are told their new place when it matters.
 * With `arrived`, the request that just joined the queue is told its place when it has to wait. Pure:
 * the machine applies the plan with one assign and its sends, so each mailbox event is a single cheap
 * transition.
 */
export function planDispatch(
  state: MailboxState,
  now: number,
  maxBackgroundWaitMs: number,
  out: Outgoing[] = [],
  arrived?: InferRequestEvent,
): MailboxPlan {
  const waiting = state.queue.foreground.length + state.queue.background.length;
  if (waiting === 0) return { state, out };
  let queue = state.queue;
  let slots = state.slots;
  let served = 0;
  const perfNow = performance.now();
  for (let index = 0; index < slots.length; index++) {
    if (slots[index]?.status !== 'idle') continue;
    const taken = takeNext(queue, now, maxBackgroundWaitMs);
    if (!taken.next) break;
    queue = taken.queue;
    const { event } = taken.next;
    slots = slots.with(index, {
      status: 'running',
      requestId: event.requestId,
      replyTo: event.replyTo,
      enqueuedAt: perfNow - (now - taken.next.enqueuedAt),
      startedAt: perfNow,
      firstByteAt: null,
    });
    served += 1;
    out.push({ to: event.replyTo, event: { type: 'infer.started', requestId: event.requestId } });
    out.push({ to: index, event: { type: 'call.start', requestId: event.requestId, kind: event.kind, request: event.request, replyTo: event.replyTo } });
  }
  if (arrived !== undefined) {
    const position = positionOf(queue, arrived.requestId, now, maxBackgroundWaitMs);
    if (position !== undefined) out.push({ to: arrived.replyTo, event: { type: 'infer.queued', requestId: arrived.requestId, position } });
  } else {
    announceMoves(queue, now, maxBackgroundWaitMs, served, 1, out);
  }
  return { state: { queue, slots }, out };
}

/** Frees a slot and serves the next request in it. */
export function planRelease(state: MailboxState, index: number, now: number, maxBackgroundWaitMs: number, out: Outgoing[] = []): MailboxPlan {
  const slots = [...state.slots];
  slots[index] = { status: 'idle' };
  return planDispatch({ queue: state.queue, slots }, now, maxBackgroundWaitMs, out);
}

/** The `infer.*` reply that ends a request whose call settled while it was running. */
export function settledReply(slot: BusySlot, event: Extract<CallEvent, { type: 'call.done' | 'call.failed' }>): BackendReply {
  if (event.type === 'call.failed') return { type: 'infer.error', requestId: slot.requestId, error: event.error };
  return {
    type: 'infer.done',
    requestId: slot.requestId,
    result: event.result,
    timing: {
      queuedMs: slot.startedAt - slot.enqueuedAt,
      firstByteMs: slot.firstByteAt === null ? null : slot.firstByteAt - slot.startedAt,
      totalMs: event.at - slot.startedAt,
    },
  };
}

export type { InferRequestEvent };
