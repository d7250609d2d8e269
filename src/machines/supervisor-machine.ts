import { enqueueActions, setup, type AnyActorRef } from 'xstate';
import type { JobEventPayload } from '../jobs/job-event.js';
import { createActorPool, type PoolCommand, type PoolMemberFailedEvent } from './actor-pool.js';
import {
  conversationMachine,
  type ConversationEvent,
  type ConversationIdleEvent,
  type ConversationNoticeEvent,
  type ConversationReadyEvent,
  type JobSpec,
} from './conversation-machine.js';
import { jobMachine, type JobFinishedEvent, type JobInput, type JobOutcome, type JobSinkEvent } from './job-machine.js';
import { emptyLine, join, remove, servingOrder, take, type FairLine } from './fair-line.js';
import { announcesMove } from './queue-position.js';
import { ShardedMap } from './sharded-map.js';

/** What every job shares: roles, fallback, the sink and the toolkit. */
export type JobDefaults = Omit<JobInput, 'jobId' | 'conversationId' | 'text' | 'mode' | 'modeBackend' | 'supervisor'>;

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
  | JobFinishedEvent
  /** A job or conversation actor of the pool crashed. */
  | PoolMemberFailedEvent;

/** Where a job is: behind its conversation's earlier jobs, parked for a place under the cap, or running. */
type JobPhase = 'waiting' | 'parked' | 'active';

interface SupervisorContext extends SupervisorInput {
  /** Every job accepted and not finished, with its conversation and phase. */
  jobs: ShardedMap<{ conversationId: string; phase: JobPhase }>;
  /** Jobs in phase `active`. */
  activeCount: number;
  /** Conversations with a live actor (`conversation:<id>`), with how many of their jobs are not finished. */
  conversations: ShardedMap<number>;
  /** Jobs whose conversation's turn has come, waiting for a place under `maxActiveJobs`: fair across owners. */
  parked: FairLine<JobSpec>;
}

/** `/status`'s job counts: running, and accepted but not running (behind a conversation or the cap). */
export function jobCounts(context: SupervisorContext): { active: number; pending: number } {
  return { active: context.activeCount, pending: context.jobs.size - context.activeCount };
}

const jobActorId = (jobId: string): string => `job:${jobId}`;
const conversationActorId = (conversationId: string): string => `conversation:${conversationId}`;
const JOB_PREFIX = jobActorId('');

const CANCELLED_OUTCOME: JobOutcome = { status: 'cancelled', branch: null, modelsUsed: [], firstByteMs: null, totalMs: 0, reason: null, answer: null };

function sinkEvent(jobId: string, payload: JobEventPayload, outcome?: JobOutcome): JobSinkEvent {
  return outcome ? { type: 'job.event', jobId, payload, outcome } : { type: 'job.event', jobId, payload };
}

function withJob(context: SupervisorContext, jobId: string, conversationId: string, phase: JobPhase) {
  return context.jobs.set(jobId, { conversationId, phase });
}

/** The job leaves the supervisor's books, and its conversation has one unfinished job fewer. */
function withoutJob(context: SupervisorContext, jobId: string): Pick<SupervisorContext, 'jobs' | 'conversations'> {
  const job = context.jobs.get(jobId);
  if (job === undefined) return { jobs: context.jobs, conversations: context.conversations };
  const left = (context.conversations.get(job.conversationId) ?? 1) - 1;
  return { jobs: context.jobs.delete(jobId), conversations: context.conversations.set(job.conversationId, left) };
}

/**
 * The job supervisor: owns a conversation actor per active conversation and a job actor per running
 * message, both in its actor pool (see `actor-pool.ts` for why not `spawnChild`); they report back to
 * it through the `supervisor` ref in their input. At most
 * `maxActiveJobs` jobs run; the rest wait (behind their conversation, then for a place), told their
 * position through `queued` events. Routes `cancel`, stops finished jobs and idle conversations. A job
 * actor that crashes (a bug: jobs end their failures themselves) ends with `error`/`internal` and the
 * rest carry on.
 */
export const supervisorMachine = setup({
  types: {
    input: {} as SupervisorInput,
    context: {} as SupervisorContext,
    events: {} as SupervisorEvent,
  },
  actors: { pool: createActorPool({ job: jobMachine, conversation: conversationMachine }) },
  guards: {
    /** Only a running job's crash is survivable; a conversation's is a bug that stops the supervisor. */
    isJobCrash: ({ context, event }) =>
      event.type === 'pool.failed' && event.id.startsWith(JOB_PREFIX) && context.jobs.get(event.id.slice(JOB_PREFIX.length))?.phase === 'active',
  },
  actions: {
    accept: enqueueActions(({ context, event, enqueue, self }) => {
      if (event.type !== 'submit') return;
      const { spec } = event;
      const unfinished = context.conversations.get(spec.conversationId);
      if (unfinished === undefined) {
        enqueue.sendTo('pool', {
          type: 'pool.spawn',
          src: 'conversation',
          id: conversationActorId(spec.conversationId),
          input: { conversationId: spec.conversationId, supervisor: self },
        } satisfies SupervisorPoolCommand);
      }
      enqueue.assign({
        jobs: withJob(context, spec.jobId, spec.conversationId, 'waiting'),
        conversations: context.conversations.set(spec.conversationId, (unfinished ?? 0) + 1),
      });
      tellConversation(enqueue, spec.conversationId, { type: 'conversation.enqueue', spec });
    }),
    startOrPark: enqueueActions(({ context, event, enqueue, self }) => {
      if (event.type !== 'conversation.ready') return;
      const { spec } = event;
      if (context.activeCount < context.maxActiveJobs) {
        startJob(context, spec, enqueue, self);
        return;
      }
      const parked = join(context.parked, spec);
      enqueue.assign({ parked, jobs: withJob(context, spec.jobId, spec.conversationId, 'parked') });
      const position = servingOrder(parked).findIndex((waiting) => waiting.jobId === spec.jobId) + 1;
      enqueue.sendTo(context.jobDefaults.sink, sinkEvent(spec.jobId, { event: 'queued', data: { position } }));
    }),
    tellWaiting: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'conversation.waiting') {
        enqueue.sendTo(context.jobDefaults.sink, sinkEvent(event.jobId, { event: 'queued', data: { position: event.position } }));
      } else if (event.type === 'conversation.dropped') {
        enqueue.assign(withoutJob(context, event.jobId));
        enqueue.sendTo(context.jobDefaults.sink, sinkEvent(event.jobId, { event: 'cancelled', data: {} }, CANCELLED_OUTCOME));
      }
    }),
    finishJob: enqueueActions(({ context, event, enqueue, self }) => {
      if (event.type !== 'job.finished') return;
      finishJob(context, event.jobId, enqueue, self);
    }),
    /** A job actor crashed (a bug): logged once with its stack by the runtime's implementation. */
    reportCrash: (_: { event: SupervisorEvent }) => undefined,
    /** A job actor crashed: it could not send its terminal event, so the supervisor sends one for it. */
    failCrashedJob: enqueueActions(({ context, event, enqueue, self }) => {
      if (event.type !== 'pool.failed') return;
      const jobId = event.id.slice(JOB_PREFIX.length);
      enqueue.sendTo(
        context.jobDefaults.sink,
        sinkEvent(
          jobId,
          { event: 'error', data: { message: context.jobDefaults.toolkit.message('internalError'), reason: 'internal' } },
          { status: 'error', branch: null, modelsUsed: [], firstByteMs: null, totalMs: 0, reason: 'internal', answer: null },
        ),
      );
      finishJob(context, jobId, enqueue, self);
    }),
    cancelJob: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'cancel') return;
      const job = context.jobs.get(event.jobId);
      if (job === undefined) return;
      if (job.phase === 'active') {
        enqueue.sendTo('pool', { type: 'pool.send', id: jobActorId(event.jobId), event: { type: 'cancel' } } satisfies SupervisorPoolCommand);
      } else if (job.phase === 'parked') {
        const { line: parked } = remove(context.parked, (spec) => spec.jobId === event.jobId);
        enqueue.assign({ parked, ...withoutJob(context, event.jobId) });
        enqueue.sendTo(context.jobDefaults.sink, sinkEvent(event.jobId, { event: 'cancelled', data: {} }, CANCELLED_OUTCOME));
        // Its conversation let it go first: tell it the turn is over.
        tellConversation(enqueue, job.conversationId, { type: 'conversation.jobFinished', jobId: event.jobId });
        announceMoves(context.parked, parked, enqueue, context.jobDefaults.sink);
      } else {
        // Behind its conversation: the conversation drops it and says so (`conversation.dropped`).
        tellConversation(enqueue, job.conversationId, { type: 'conversation.cancel', jobId: event.jobId });
      }
    }),
    cancelAll: enqueueActions(({ context, enqueue }) => {
      let books: Pick<SupervisorContext, 'jobs' | 'conversations'> = context;
      for (const [jobId, job] of context.jobs.entries()) {
        if (job.phase === 'active') {
          enqueue.sendTo('pool', { type: 'pool.send', id: jobActorId(jobId), event: { type: 'cancel' } } satisfies SupervisorPoolCommand);
        } else if (job.phase === 'parked') {
          books = withoutJob({ ...context, ...books }, jobId);
          enqueue.sendTo(context.jobDefaults.sink, sinkEvent(jobId, { event: 'cancelled', data: {} }, CANCELLED_OUTCOME));
        } else {
          tellConversation(enqueue, job.conversationId, { type: 'conversation.cancel', jobId });
        }
      }
      enqueue.assign({ parked: emptyLine(), ...books });
    }),
    /** Any other member's crash is a bug: the supervisor fails with it (the runtime logs it). */
    rethrow: ({ event }) => {
      if (event.type === 'pool.failed') throw event.error;
    },
    stopIdleConversation: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'conversation.idle') return;
      // A message for it may have been accepted after it said so: then it is not idle any more.
      if ((context.conversations.get(event.conversationId) ?? 0) > 0) return;
      enqueue.assign({ conversations: context.conversations.delete(event.conversationId) });
      enqueue.sendTo('pool', { type: 'pool.stop', id: conversationActorId(event.conversationId) } satisfies SupervisorPoolCommand);
    }),
  },
}).createMachine({
  id: 'supervisor',
  context: ({ input }) => ({ ...input, jobs: ShardedMap.empty(), activeCount: 0, conversations: ShardedMap.empty(), parked: emptyLine<JobSpec>() }),
  invoke: { id: 'pool', src: 'pool' },
  on: {
    submit: { actions: 'accept' },
    'conversation.ready': { actions: 'startOrPark' },
    'conversation.waiting': { actions: 'tellWaiting' },
    'conversation.dropped': { actions: 'tellWaiting' },
    'job.finished': { actions: 'finishJob' },
    'pool.failed': [{ guard: 'isJobCrash', actions: ['reportCrash', 'failCrashedJob'] }, { actions: 'rethrow' }],
    'conversation.idle': { actions: 'stopIdleConversation' },
    cancel: { actions: 'cancelJob' },
    cancelAll: { actions: 'cancelAll' },
  },
});

type SupervisorPoolCommand = PoolCommand<{ job: typeof jobMachine; conversation: typeof conversationMachine }>;

/** What the helpers below need of an `enqueueActions` enqueuer. */
interface Enqueuer {
  assign(values: Partial<Pick<SupervisorContext, 'jobs' | 'conversations' | 'activeCount' | 'parked'>>): void;
  sendTo(to: 'pool', event: SupervisorPoolCommand): void;
  sendTo(to: JobDefaults['sink'], event: JobSinkEvent): void;
}

function tellConversation(enqueue: Pick<Enqueuer, 'sendTo'>, conversationId: string, event: ConversationEvent): void {
  enqueue.sendTo('pool', { type: 'pool.send', id: conversationActorId(conversationId), event });
}

/** Moves a job to active and starts its actor. */
function startJob(context: SupervisorContext, spec: JobSpec, enqueue: Enqueuer, supervisor: AnyActorRef): void {
  enqueue.assign({ jobs: withJob(context, spec.jobId, spec.conversationId, 'active'), activeCount: context.activeCount + 1 });
  enqueue.sendTo('pool', {
    type: 'pool.spawn',
    src: 'job',
    id: jobActorId(spec.jobId),
    input: {
      ...context.jobDefaults,
      // Notices, errors and prompts in the message's language.
      toolkit: context.jobDefaults.toolkit.forMessage?.(spec.text) ?? context.jobDefaults.toolkit,
      jobId: spec.jobId,
      conversationId: spec.conversationId,
      text: spec.text,
      mode: spec.mode,
      givenHistory: spec.history ?? null,
      modeBackend: spec.mode !== 'auto' && Object.hasOwn(context.modes, spec.mode) ? context.modes[spec.mode]! : null,
      supervisor,
    },
  });
}

/** A running job ended: stop its actor, give its conversation the turn back, start the first parked job. */
function finishJob(context: SupervisorContext, jobId: string, enqueue: Enqueuer, supervisor: AnyActorRef): void {
  const job = context.jobs.get(jobId);
  if (job?.phase !== 'active') return;
  enqueue.sendTo('pool', { type: 'pool.stop', id: jobActorId(jobId) });
  tellConversation(enqueue, job.conversationId, { type: 'conversation.jobFinished', jobId });
  const after: SupervisorContext = { ...context, ...withoutJob(context, jobId), activeCount: context.activeCount - 1 };
  const { line: rest, item: next } = take(context.parked);
  if (next === undefined) {
    enqueue.assign({ jobs: after.jobs, conversations: after.conversations, activeCount: after.activeCount });
    return;
  }
  enqueue.assign({ parked: rest, conversations: after.conversations });
  startJob(after, next, enqueue, supervisor);
  announceMoves(context.parked, rest, enqueue, context.jobDefaults.sink);
}

/**
 * Tells the parked jobs whose place changed to one that matters (see `queue-position.ts`): one line of
 * 2000 costs a few events per job, not one per dispatch for every waiter.
 */
function announceMoves(before: FairLine<JobSpec>, after: FairLine<JobSpec>, enqueue: Pick<Enqueuer, 'sendTo'>, sink: JobDefaults['sink']): void {
  const previous = new Map(servingOrder(before).map((spec, index) => [spec.jobId, index + 1]));
  servingOrder(after).forEach((spec, index) => {
    const was = previous.get(spec.jobId);
    if (was !== undefined && announcesMove(was, index + 1)) enqueue.sendTo(sink, sinkEvent(spec.jobId, { event: 'queued', data: { position: index + 1 } }));
  });
}
