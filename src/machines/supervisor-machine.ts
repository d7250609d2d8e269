import { enqueueActions, setup } from 'xstate';
import type { JobEventPayload } from '../jobs/job-event.js';
import {
  conversationMachine,
  type ConversationIdleEvent,
  type ConversationNoticeEvent,
  type ConversationReadyEvent,
  type JobSpec,
} from './conversation-machine.js';
import { jobMachine, type JobFinishedEvent, type JobInput, type JobSinkEvent } from './job-machine.js';

/** What every job shares: roles, fallback, the sink and the toolkit. */
export type JobDefaults = Omit<JobInput, 'jobId' | 'conversationId' | 'text' | 'mode' | 'modeBackend'>;

export interface SupervisorInput {
  maxActiveJobs: number;
  /** Mode name → backend name. */
  modes: Readonly<Record<string, string>>;
  jobDefaults: JobDefaults;
}

export type SupervisorEvent =
  | { type: 'submit'; spec: JobSpec }
  | { type: 'cancel'; jobId: string }
  | { type: 'cancelAll' }
  | ConversationReadyEvent
  | ConversationNoticeEvent
  | ConversationIdleEvent
  | JobFinishedEvent;

interface SupervisorContext extends SupervisorInput {
  /** Conversations with a live actor (`conversation:<id>`). */
  conversations: ReadonlySet<string>;
  /** Running jobs, by id, with their conversation. */
  active: ReadonlyMap<string, string>;
  /** Jobs accepted and not running yet (behind their conversation or the cap), by id, with their conversation. */
  waiting: ReadonlyMap<string, string>;
  /** Jobs whose conversation's turn has come, waiting for a free place under `maxActiveJobs`. */
  pending: readonly JobSpec[];
}

const jobActorId = (jobId: string): string => `job:${jobId}`;
const conversationActorId = (conversationId: string): string => `conversation:${conversationId}`;

function sinkEvent(jobId: string, payload: JobEventPayload, cancelled = false): JobSinkEvent {
  const outcome = cancelled
    ? { status: 'cancelled' as const, branch: null, modelsUsed: [], firstByteMs: null, totalMs: 0, reason: null }
    : undefined;
  return outcome ? { type: 'job.event', jobId, payload, outcome } : { type: 'job.event', jobId, payload };
}

/**
 * The job supervisor: owns a conversation actor per active conversation and a job actor per running
 * message. At most `maxActiveJobs` jobs run; the rest wait (behind their conversation, then for a
 * place), told their position through `queued` events. Routes `cancel`, stops finished children and
 * idle conversations.
 */
export const supervisorMachine = setup({
  types: {
    input: {} as SupervisorInput,
    context: {} as SupervisorContext,
    events: {} as SupervisorEvent,
  },
  actors: { job: jobMachine, conversation: conversationMachine },
  actions: {
    accept: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'submit') return;
      const { spec } = event;
      if (!context.conversations.has(spec.conversationId)) {
        enqueue.assign({ conversations: new Set(context.conversations).add(spec.conversationId) });
        enqueue.spawnChild('conversation', { id: conversationActorId(spec.conversationId), input: { conversationId: spec.conversationId } });
      }
      enqueue.assign({ waiting: new Map(context.waiting).set(spec.jobId, spec.conversationId) });
      enqueue.sendTo(conversationActorId(spec.conversationId), { type: 'conversation.enqueue', spec });
    }),
    startOrPark: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'conversation.ready') return;
      const { spec } = event;
      if (context.active.size < context.maxActiveJobs) {
        startJob(context, spec, enqueue);
        return;
      }
      enqueue.assign({ pending: [...context.pending, spec] });
      enqueue.sendTo(context.jobDefaults.sink, sinkEvent(spec.jobId, { event: 'queued', data: { position: context.pending.length + 1 } }));
    }),
    tellWaiting: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'conversation.waiting') {
        enqueue.sendTo(context.jobDefaults.sink, sinkEvent(event.jobId, { event: 'queued', data: { position: event.position } }));
      } else if (event.type === 'conversation.dropped') {
        const waiting = new Map(context.waiting);
        waiting.delete(event.jobId);
        enqueue.assign({ waiting });
        enqueue.sendTo(context.jobDefaults.sink, sinkEvent(event.jobId, { event: 'cancelled', data: {} }, true));
      }
    }),
    finishJob: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'job.finished') return;
      const active = new Map(context.active);
      active.delete(event.jobId);
      enqueue.stopChild(jobActorId(event.jobId));
      enqueue.assign({ active });
      // Its conversation is alive: conversations are only stopped when none of their jobs is running or waiting.
      enqueue.sendTo(conversationActorId(event.conversationId), { type: 'conversation.jobFinished', jobId: event.jobId });
      const [next, ...rest] = context.pending;
      if (next) {
        enqueue.assign({ pending: rest });
        startJob({ ...context, active }, next, enqueue);
        rest.forEach((spec, index) =>
          enqueue.sendTo(context.jobDefaults.sink, sinkEvent(spec.jobId, { event: 'queued', data: { position: index + 1 } })),
        );
      }
    }),
    cancelJob: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'cancel') return;
      if (context.active.has(event.jobId)) {
        enqueue.sendTo(jobActorId(event.jobId), { type: 'cancel' });
        return;
      }
      const parked = context.pending.findIndex((spec) => spec.jobId === event.jobId);
      if (parked >= 0) {
        const spec = context.pending[parked] as JobSpec;
        const pending = context.pending.toSpliced(parked, 1);
        const waiting = new Map(context.waiting);
        waiting.delete(spec.jobId);
        enqueue.assign({ pending, waiting });
        enqueue.sendTo(context.jobDefaults.sink, sinkEvent(spec.jobId, { event: 'cancelled', data: {} }, true));
        // Its conversation let it go first: tell it the turn is over.
        enqueue.sendTo(conversationActorId(spec.conversationId), { type: 'conversation.jobFinished', jobId: spec.jobId });
        pending.slice(parked).forEach((rest, offset) =>
          enqueue.sendTo(context.jobDefaults.sink, sinkEvent(rest.jobId, { event: 'queued', data: { position: parked + offset + 1 } })),
        );
        return;
      }
      const conversationId = context.waiting.get(event.jobId);
      if (conversationId !== undefined) {
        enqueue.sendTo(conversationActorId(conversationId), { type: 'conversation.cancel', jobId: event.jobId });
      }
    }),
    cancelAll: enqueueActions(({ context, enqueue }) => {
      for (const jobId of context.active.keys()) enqueue.sendTo(jobActorId(jobId), { type: 'cancel' });
      const waiting = new Map(context.waiting);
      for (const spec of context.pending) {
        waiting.delete(spec.jobId);
        enqueue.sendTo(context.jobDefaults.sink, sinkEvent(spec.jobId, { event: 'cancelled', data: {} }, true));
      }
      // Jobs still behind their conversation: the conversation drops them and says so (`conversation.dropped`).
      for (const [jobId, conversationId] of waiting) {
        enqueue.sendTo(conversationActorId(conversationId), { type: 'conversation.cancel', jobId });
      }
      enqueue.assign({ pending: [], waiting });
    }),
    stopIdleConversation: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'conversation.idle') return;
      const busy = [...context.active.values(), ...context.waiting.values()].includes(event.conversationId);
      if (busy) return;
      const conversations = new Set(context.conversations);
      conversations.delete(event.conversationId);
      enqueue.assign({ conversations });
      enqueue.stopChild(conversationActorId(event.conversationId));
    }),
  },
}).createMachine({
  id: 'supervisor',
  context: ({ input }) => ({ ...input, conversations: new Set(), active: new Map(), waiting: new Map(), pending: [] }),
  on: {
    submit: { actions: 'accept' },
    'conversation.ready': { actions: 'startOrPark' },
    'conversation.waiting': { actions: 'tellWaiting' },
    'conversation.dropped': { actions: 'tellWaiting' },
    'job.finished': { actions: 'finishJob' },
    'conversation.idle': { actions: 'stopIdleConversation' },
    cancel: { actions: 'cancelJob' },
    cancelAll: { actions: 'cancelAll' },
  },
});

/** The two things `startJob` needs of an `enqueueActions` enqueuer. */
interface JobEnqueuer {
  assign(values: Pick<SupervisorContext, 'active' | 'waiting'>): void;
  spawnChild(src: 'job', options: { id: string; input: JobInput }): void;
}

/** Moves a job from waiting to active and spawns its actor. */
function startJob(context: SupervisorContext, spec: JobSpec, enqueue: JobEnqueuer): void {
  const waiting = new Map(context.waiting);
  waiting.delete(spec.jobId);
  enqueue.assign({ active: new Map(context.active).set(spec.jobId, spec.conversationId), waiting });
  enqueue.spawnChild('job', {
    id: jobActorId(spec.jobId),
    input: {
      ...context.jobDefaults,
      jobId: spec.jobId,
      conversationId: spec.conversationId,
      text: spec.text,
      mode: spec.mode,
      modeBackend: spec.mode === 'auto' ? null : (context.modes[spec.mode] ?? null),
    },
  });
}
