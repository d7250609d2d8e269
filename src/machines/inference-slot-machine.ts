import { assign, fromCallback, sendParent, sendTo, setup, type AnyActorRef } from 'xstate';
import type { ChatRequest, ChatResult } from '../actors/inference/types.js';
import type { ErrorInfo } from '../errors.js';
import type { BackendReply, RequestKind } from './backend-protocol.js';

/** What the backend hands a free slot to serve. */
export interface SlotRunEvent {
  type: 'slot.run';
  requestId: string;
  kind: RequestKind;
  request: ChatRequest;
  replyTo: AnyActorRef;
  /** `performance.now()` when the request was enqueued. */
  enqueuedAt: number;
}

export interface SlotCancelEvent {
  type: 'slot.cancel';
  requestId: string;
}

/** Commands to the slot's `callBackend` actor, which performs one HTTP call at a time. */
export type CallCommand =
  | { type: 'call.start'; requestId: string; kind: RequestKind; request: ChatRequest; replyTo: AnyActorRef }
  | { type: 'call.abort'; requestId: string };

/** Events the `callBackend` actor sends back, each naming the request it is about. */
export type CallEvent =
  | { type: 'call.firstByte'; requestId: string; at: number }
  | { type: 'call.progress'; requestId: string }
  | { type: 'call.done'; requestId: string; result: ChatResult; at: number }
  | { type: 'call.failed'; requestId: string; error: ErrorInfo };

export type SlotEvent = SlotRunEvent | SlotCancelEvent | CallEvent;

/** Sent to the backend when the slot is free again, with how its request ended. */
export interface SlotReleasedEvent {
  type: 'slot.released';
  slot: number;
  requestId: string;
  outcome: 'completed' | 'failed' | 'cancelled';
}

export interface SlotInput {
  slot: number;
}

interface SlotContext {
  slot: number;
  /** Requests this slot has taken, for status and for walking its graph. */
  served: number;
  requestId: string;
  replyTo: AnyActorRef | null;
  enqueuedAt: number;
  startedAt: number;
  firstByteAt: number | null;
}

const NO_REQUEST = { requestId: '', replyTo: null, enqueuedAt: 0, startedAt: 0, firstByteAt: null };

/**
 * One of a backend's `concurrency` slots: a long-lived actor that serves one request at a time.
 * `idle` → `running` (waiting for the first byte, then streaming) → `idle`; a cancel moves it to
 * `draining`, where the HTTP request is being aborted and the slot stays taken until the call has really
 * settled, so the next request never overlaps the aborted one. The HTTP call lives in `callBackend`,
 * invoked for the slot's whole life so that it outlives `running` while draining.
 */
export const inferenceSlotMachine = setup({
  types: {
    input: {} as SlotInput,
    context: {} as SlotContext,
    events: {} as SlotEvent,
  },
  actors: {
    // Supplied by the runtime through `.provide()`; a slot without it fails loudly.
    callBackend: fromCallback<CallCommand>(() => {
      throw new Error('callBackend is not provided');
    }),
  },
  delays: {
    /** Upper bound on an abort: an HTTP client that never settles must not hold the slot forever. */
    drainGrace: 10_000,
  },
  guards: {
    /** Events of a call abandoned after `drainGrace` must not touch the next request. */
    isCurrentCall: ({ context, event }) => 'requestId' in event && event.requestId === context.requestId,
  },
  actions: {
    acceptRun: assign(({ event }) => {
      const run = event as SlotRunEvent;
      return { requestId: run.requestId, replyTo: run.replyTo, enqueuedAt: run.enqueuedAt, startedAt: performance.now(), firstByteAt: null };
    }),
    countServed: assign({ served: ({ context }) => context.served + 1 }),
    startCall: sendTo('call', ({ event }): CallCommand => {
      const run = event as SlotRunEvent;
      return { type: 'call.start', requestId: run.requestId, kind: run.kind, request: run.request, replyTo: run.replyTo };
    }),
    abortCall: sendTo('call', ({ context }): CallCommand => ({ type: 'call.abort', requestId: context.requestId })),
    recordFirstByte: assign({ firstByteAt: ({ event }) => (event.type === 'call.firstByte' ? event.at : null) }),
    replyStarted: sendTo(
      ({ event }) => (event as SlotRunEvent).replyTo,
      ({ event }): BackendReply => ({ type: 'infer.started', requestId: (event as SlotRunEvent).requestId }),
    ),
    replyDone: sendTo(
      ({ context }) => context.replyTo as AnyActorRef,
      ({ context, event }): BackendReply => {
        const done = event as Extract<CallEvent, { type: 'call.done' }>;
        return {
          type: 'infer.done',
          requestId: context.requestId,
          result: done.result,
          timing: {
            queuedMs: context.startedAt - context.enqueuedAt,
            firstByteMs: context.firstByteAt === null ? null : context.firstByteAt - context.startedAt,
            totalMs: done.at - context.startedAt,
          },
        };
      },
    ),
    replyFailed: sendTo(
      ({ context }) => context.replyTo as AnyActorRef,
      ({ context, event }): BackendReply => ({
        type: 'infer.error',
        requestId: context.requestId,
        error: (event as Extract<CallEvent, { type: 'call.failed' }>).error,
      }),
    ),
    replyCancelled: sendTo(
      ({ context }) => context.replyTo as AnyActorRef,
      ({ context }): BackendReply => ({ type: 'infer.cancelled', requestId: context.requestId }),
    ),
    reportActivity: sendParent({ type: 'backend.activity' }),
    releaseCompleted: sendParent(({ context }): SlotReleasedEvent => ({ type: 'slot.released', slot: context.slot, requestId: context.requestId, outcome: 'completed' })),
    releaseFailed: sendParent(({ context }): SlotReleasedEvent => ({ type: 'slot.released', slot: context.slot, requestId: context.requestId, outcome: 'failed' })),
    releaseCancelled: sendParent(({ context }): SlotReleasedEvent => ({ type: 'slot.released', slot: context.slot, requestId: context.requestId, outcome: 'cancelled' })),
    forgetRequest: assign(NO_REQUEST),
  },
}).createMachine({
  id: 'inferenceSlot',
  context: ({ input }) => ({ slot: input.slot, served: 0, ...NO_REQUEST }),
  invoke: { id: 'call', src: 'callBackend' },
  initial: 'idle',
  states: {
    idle: {
      on: { 'slot.run': { target: 'running', actions: ['acceptRun', 'countServed', 'replyStarted', 'startCall'] } },
    },
    running: {
      initial: 'waiting',
      states: {
        waiting: {
          on: { 'call.firstByte': { guard: 'isCurrentCall', target: 'streaming', actions: ['recordFirstByte', 'reportActivity'] } },
        },
        streaming: {
          on: { 'call.progress': { guard: 'isCurrentCall', actions: 'reportActivity' } },
        },
      },
      on: {
        'call.done': { guard: 'isCurrentCall', target: 'idle', actions: ['replyDone', 'releaseCompleted', 'forgetRequest'] },
        'call.failed': { guard: 'isCurrentCall', target: 'idle', actions: ['replyFailed', 'releaseFailed', 'forgetRequest'] },
        'slot.cancel': { guard: 'isCurrentCall', target: 'draining', actions: ['abortCall', 'replyCancelled'] },
      },
    },
    draining: {
      on: {
        'call.done': { guard: 'isCurrentCall', target: 'idle', actions: ['releaseCancelled', 'forgetRequest'] },
        'call.failed': { guard: 'isCurrentCall', target: 'idle', actions: ['releaseCancelled', 'forgetRequest'] },
      },
      after: { drainGrace: { target: 'idle', actions: ['releaseCancelled', 'forgetRequest'] } },
    },
  },
});
