import { assign, enqueueActions, sendTo, setup, type AnyActorRef } from 'xstate';
import { announcesMove } from './queue-position.js';

/** A job as the supervisor and conversations pass it around, before it runs. */
export interface JobSpec {
  jobId: string;
  /** Who submitted it: jobs waiting for a place are served fairly across owners. */
  owner: string;
  conversationId: string;
  text: string;
  mode: string;
  /** The client's own history (the OpenAI API), instead of the stored conversation's. */
  history?: Array<{ role: 'user' | 'assistant'; content: string }>;
}

export type ConversationEvent =
  | { type: 'conversation.enqueue'; spec: JobSpec }
  | { type: 'conversation.jobFinished'; jobId: string }
  | { type: 'conversation.cancel'; jobId: string };

/** Sent to the supervisor: this job may run now (the conversation's turn has come). */
export interface ConversationReadyEvent {
  type: 'conversation.ready';
  spec: JobSpec;
}

/** Sent to the supervisor: a waiting job's place in its conversation, or that it was cancelled while waiting. */
export type ConversationNoticeEvent =
  | { type: 'conversation.waiting'; jobId: string; position: number }
  | { type: 'conversation.dropped'; jobId: string };

/** Sent to the supervisor when the conversation has been idle long enough to stop. */
export interface ConversationIdleEvent {
  type: 'conversation.idle';
  conversationId: string;
}

interface ConversationContext {
  conversationId: string;
  /** Told when a job may run, where waiting jobs stand, and when the conversation is idle. */
  supervisor: AnyActorRef;
  running: string | null;
  waiting: JobSpec[];
}

/**
 * One conversation: its jobs run one at a time so that its history stays in order. A message that
 * arrives while another is being answered waits here (its requester is told its place). As soon as the
 * conversation has nothing running and nothing waiting it asks to be stopped: its history lives in the
 * store (and the store's cache), so an idle conversation costs nothing, and the supervisor's children
 * and the system's timers stay as many as the conversations at work.
 */
export const conversationMachine = setup({
  types: {
    input: {} as { conversationId: string; supervisor: AnyActorRef },
    context: {} as ConversationContext,
    events: {} as ConversationEvent,
  },
  guards: {
    hasWaiting: ({ context }) => context.waiting.length > 0,
  },
  actions: {
    startNow: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'conversation.enqueue') return;
      enqueue.assign({ running: event.spec.jobId });
      enqueue.sendTo(context.supervisor, { type: 'conversation.ready', spec: event.spec } satisfies ConversationReadyEvent);
    }),
    wait: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'conversation.enqueue') return;
      enqueue.assign({ waiting: [...context.waiting, event.spec] });
      enqueue.sendTo(context.supervisor, { type: 'conversation.waiting', jobId: event.spec.jobId, position: context.waiting.length + 1 } satisfies ConversationNoticeEvent);
    }),
    startNext: enqueueActions(({ context, enqueue }) => {
      const [next, ...rest] = context.waiting;
      if (!next) return;
      enqueue.assign({ running: next.jobId, waiting: rest });
      enqueue.sendTo(context.supervisor, { type: 'conversation.ready', spec: next } satisfies ConversationReadyEvent);
      // Each moved up one place; only a place that matters is told (see `queue-position.ts`).
      rest.forEach((spec, index) => {
        if (announcesMove(index + 2, index + 1)) enqueue.sendTo(context.supervisor, { type: 'conversation.waiting', jobId: spec.jobId, position: index + 1 } satisfies ConversationNoticeEvent);
      });
    }),
    clearRunning: assign({ running: null }),
    dropWaiting: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'conversation.cancel') return;
      const index = context.waiting.findIndex((spec) => spec.jobId === event.jobId);
      if (index < 0) return;
      const waiting = context.waiting.toSpliced(index, 1);
      enqueue.assign({ waiting });
      enqueue.sendTo(context.supervisor, { type: 'conversation.dropped', jobId: event.jobId } satisfies ConversationNoticeEvent);
      waiting.slice(index).forEach((spec, offset) => {
        const place = index + offset + 1;
        if (announcesMove(place + 1, place)) enqueue.sendTo(context.supervisor, { type: 'conversation.waiting', jobId: spec.jobId, position: place } satisfies ConversationNoticeEvent);
      });
    }),
    reportIdle: sendTo(({ context }) => context.supervisor, ({ context }): ConversationIdleEvent => ({ type: 'conversation.idle', conversationId: context.conversationId })),
  },
}).createMachine({
  id: 'conversation',
  context: ({ input }) => ({ conversationId: input.conversationId, supervisor: input.supervisor, running: null, waiting: [] }),
  initial: 'idle',
  states: {
    idle: {
      on: { 'conversation.enqueue': { target: 'busy', actions: 'startNow' } },
    },
    busy: {
      on: {
        'conversation.enqueue': { actions: 'wait' },
        'conversation.cancel': { actions: 'dropWaiting' },
        'conversation.jobFinished': [
          { guard: 'hasWaiting', actions: ['clearRunning', 'startNext'] },
          { target: 'idle', actions: ['clearRunning', 'reportIdle'] },
        ],
      },
    },
  },
});
