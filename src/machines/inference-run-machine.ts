import { assign, fromCallback, sendParent, sendTo, setup, type AnyActorRef } from 'xstate';
import type { ChatRequest, ChatResult } from '../actors/inference/types.js';
import type { ErrorInfo } from '../errors.js';
import type { BackendReply, RequestKind } from './backend-protocol.js';

/** What the backend hands a run when a slot serves a request. */
export interface InferenceRunInput {
  requestId: string;
  kind: RequestKind;
  request: ChatRequest;
  replyTo: AnyActorRef;
  enqueuedAt: number;
}

/** Input of the `callBackend` actor: the HTTP call for one request. */
export interface CallBackendInput {
  requestId: string;
  kind: RequestKind;
  request: ChatRequest;
  /** Chunks go straight from the call to the requester: one hop less on the streaming hot path. */
  replyTo: AnyActorRef;
}

/** Events the `callBackend` actor sends back to its run. */
export type CallEvent =
  | { type: 'call.firstByte'; at: number }
  | { type: 'call.progress' }
  | { type: 'call.done'; result: ChatResult; at: number }
  | { type: 'call.failed'; error: ErrorInfo };

/** Events the run accepts from its call or its backend. */
export type InferenceRunEvent = CallEvent | { type: 'cancel' };

/** Sent to the call when its run is cancelled: abort the HTTP request, stop forwarding chunks. */
export interface AbortCallEvent {
  type: 'abort';
}

/** How the run ended; the backend frees the slot when it receives this. */
export interface RunReleasedEvent {
  type: 'run.released';
  requestId: string;
  outcome: 'completed' | 'failed' | 'cancelled';
}

interface RunContext extends InferenceRunInput {
  startedAt: number;
  firstByteAt: number | null;
}

/**
 * One request occupying one backend slot. `running` (waiting for the first byte, then streaming) ends in
 * `completed` or `failed`; a cancel moves it to `draining`, where the HTTP request is being aborted and the
 * slot stays taken until the call has really settled, so the next request never overlaps it.
 */
export const inferenceRunMachine = setup({
  types: {
    input: {} as InferenceRunInput,
    context: {} as RunContext,
    events: {} as InferenceRunEvent,
  },
  actors: {
    // Supplied by the runtime through `.provide()`; a run without it fails loudly.
    callBackend: fromCallback<AbortCallEvent, CallBackendInput>(() => {
      throw new Error('callBackend is not provided');
    }),
  },
  delays: {
    /** Upper bound on an abort; an HTTP client that never settles must not hold the slot forever. */
    drainGrace: 10_000,
  },
  actions: {
    replyStarted: sendTo(
      ({ context }) => context.replyTo,
      ({ context }): BackendReply => ({ type: 'infer.started', requestId: context.requestId }),
    ),
    recordFirstByte: assign({
      firstByteAt: ({ event }) => (event.type === 'call.firstByte' ? event.at : null),
    }),
    replyDone: sendTo(
      ({ context }) => context.replyTo,
      ({ context, event }): BackendReply => {
        const at = event.type === 'call.done' ? event.at : performance.now();
        const result = event.type === 'call.done' ? event.result : { content: '', toolCalls: [], finishReason: null };
        return {
          type: 'infer.done',
          requestId: context.requestId,
          result,
          timing: {
            queuedMs: context.startedAt - context.enqueuedAt,
            firstByteMs: context.firstByteAt === null ? null : context.firstByteAt - context.startedAt,
            totalMs: at - context.startedAt,
          },
        };
      },
    ),
    replyFailed: sendTo(
      ({ context }) => context.replyTo,
      ({ context, event }): BackendReply => ({
        type: 'infer.error',
        requestId: context.requestId,
        error:
          event.type === 'call.failed'
            ? event.error
            : { code: 'internal', reason: 'internal', retryable: false, message: 'unexpected event' },
      }),
    ),
    replyCancelled: sendTo(
      ({ context }) => context.replyTo,
      ({ context }): BackendReply => ({ type: 'infer.cancelled', requestId: context.requestId }),
    ),
    abortCall: sendTo('call', { type: 'abort' } satisfies AbortCallEvent),
    reportActivity: sendParent({ type: 'backend.activity' }),
    releaseCompleted: sendParent(({ context }): RunReleasedEvent => ({ type: 'run.released', requestId: context.requestId, outcome: 'completed' })),
    releaseFailed: sendParent(({ context }): RunReleasedEvent => ({ type: 'run.released', requestId: context.requestId, outcome: 'failed' })),
    releaseCancelled: sendParent(({ context }): RunReleasedEvent => ({ type: 'run.released', requestId: context.requestId, outcome: 'cancelled' })),
  },
}).createMachine({
  id: 'inferenceRun',
  context: ({ input }) => ({ ...input, startedAt: performance.now(), firstByteAt: null }),
  entry: 'replyStarted',
  // Invoked at the root so that it outlives `running`: while draining, the call is still being aborted.
  invoke: {
    id: 'call',
    src: 'callBackend',
    input: ({ context }) => ({
      requestId: context.requestId,
      kind: context.kind,
      request: context.request,
      replyTo: context.replyTo,
    }),
  },
  initial: 'running',
  states: {
    running: {
      initial: 'waiting',
      states: {
        waiting: {
          on: { 'call.firstByte': { target: 'streaming', actions: ['recordFirstByte', 'reportActivity'] } },
        },
        streaming: {
          on: { 'call.progress': { actions: 'reportActivity' } },
        },
      },
      on: {
        'call.done': { target: 'completed', actions: 'replyDone' },
        'call.failed': { target: 'failed', actions: 'replyFailed' },
        cancel: { target: 'draining', actions: ['abortCall', 'replyCancelled'] },
      },
    },
    draining: {
      on: {
        'call.done': 'released',
        'call.failed': 'released',
      },
      after: { drainGrace: 'released' },
    },
    completed: { type: 'final', entry: 'releaseCompleted' },
    failed: { type: 'final', entry: 'releaseFailed' },
    released: { type: 'final', entry: 'releaseCancelled' },
  },
});
