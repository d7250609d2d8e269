import { assign, emit, enqueueActions, fromCallback, fromPromise, not, setup, type ActorRefFrom, type AnyActorRef, type AnyEventObject } from 'xstate';
import type { BackendStatusReport } from '../actors/inference/types.js';
import type { InferCancelEvent, InferRequestEvent, BackendReply } from './backend-protocol.js';
import { inferenceSlotMachine, type SlotReleasedEvent, type SlotRunEvent } from './inference-slot-machine.js';
import { INITIAL_MEASURES, updateBaseline, wantsInferencePing, type HealthMeasures } from './load-estimate.js';
import { planDispatch, type MailboxPlan, type RunningRequest } from './mailbox-plan.js';
import { EMPTY_QUEUE, enqueueRequest, removeRequest, type RequestQueue } from './request-queue.js';

/** Static settings of one backend actor. */
export interface BackendMachineInput {
  name: string;
  concurrency: number;
  maxBackgroundWaitMs: number;
  healthIntervalMs: number;
}

export interface BackendContext extends BackendMachineInput {
  queue: RequestQueue;
  /** The `concurrency` slot actors, spawned once; a request is served by sending it to a free one. */
  slots: ReadonlyArray<ActorRefFrom<typeof inferenceSlotMachine>>;
  freeSlots: readonly number[];
  running: ReadonlyMap<string, RunningRequest>;
  measures: HealthMeasures;
  /** Last time a stream of this backend made progress (epoch ms): proof of life between probes. */
  lastActivityAt: number;
  /** Sanitized reason of the last failed probe. */
  lastProbeError: string | null;
}

/** What the `probeBackend` actor measures. */
export interface ProbeOutput {
  healthMs: number;
  statusReport: BackendStatusReport | null;
}

/** Input of the `probeBackend` actor. */
export interface ProbeInput {
  name: string;
}

/** Input of the `inferencePing` actor: it is a requester of its own backend, at background priority. */
export interface PingInput {
  backend: AnyActorRef;
}

/** What the ping measured: the latency of a one-token completion, or null when it failed. */
export type PingEvent = { type: 'ping.measured'; latencyMs: number } | { type: 'ping.failed' };

/** Messages to the `requesterWatcher` actor. */
export type WatcherCommand = { type: 'watch'; requestId: string; ref: AnyActorRef } | { type: 'unwatch'; requestId: string };

/** Emitted to subscribers (`actor.on(...)`) when the backend's liveness changes. */
export type BackendEmitted =
  | { type: 'backend.up'; name: string; healthMs: number }
  | { type: 'backend.down'; name: string; reason: string };

export type BackendEvent =
  | InferRequestEvent
  | InferCancelEvent
  | SlotReleasedEvent
  | PingEvent
  | { type: 'backend.activity' };

/** The two things `applyPlan` needs of an `enqueueActions` enqueuer. */
interface PlanEnqueuer {
  assign(values: Pick<BackendContext, 'queue' | 'running' | 'freeSlots'>): void;
  sendTo(to: AnyActorRef, event: AnyEventObject): void;
}

/** Applies a mailbox plan: one assign (when anything changed), then the slot runs and the notices. */
function applyPlan(enqueue: PlanEnqueuer, context: BackendContext, plan: MailboxPlan, changed = false): void {
  if (changed || plan.state.queue !== context.queue || plan.runs.length > 0) {
    enqueue.assign({ queue: plan.state.queue, running: plan.state.running, freeSlots: plan.state.freeSlots });
  }
  for (const run of plan.runs) {
    const slot = context.slots[run.slot];
    if (slot) enqueue.sendTo(slot, run.event);
  }
  for (const notice of plan.notices) enqueue.sendTo(notice.to, notice.event);
}

/**
 * One inference backend as an actor, in two parallel regions.
 *
 * `mailbox` serializes inference: requests wait in an explicit queue (foreground before background, with
 * aging) and each one served goes to one of `concurrency` long-lived `inferenceSlot` children. Its states say
 * how full the slots are: `idle`, `serving` (a slot free), `saturated` (every slot taken, running or draining).
 *
 * `health` probes the server every `healthInterval`: `unknown` until the first answer, then `up` or
 * `down`; while `up` it may ping the model itself (`pinging`) when the hybrid load rule asks for it.
 * Changes of liveness are emitted as `backend.up` / `backend.down`.
 */
export const backendMachine = setup({
  types: {
    input: {} as BackendMachineInput,
    context: {} as BackendContext,
    events: {} as BackendEvent,
    emitted: {} as BackendEmitted,
  },
  actors: {
    inferenceSlot: inferenceSlotMachine,
    // The three below are supplied by the runtime through `.provide()`.
    probeBackend: fromPromise<ProbeOutput, ProbeInput>(async () => {
      throw new Error('probeBackend is not provided');
    }),
    inferencePing: fromCallback<BackendReply, PingInput>(() => {
      throw new Error('inferencePing is not provided');
    }),
    requesterWatcher: fromCallback<WatcherCommand>(() => {
      throw new Error('requesterWatcher is not provided');
    }),
  },
  delays: {
    healthInterval: ({ context }) => context.healthIntervalMs,
  },
  guards: {
    hasRunning: ({ context }) => context.running.size > 0,
    allSlotsTaken: ({ context }) => context.freeSlots.length === 0,
    /** The hybrid rule wants a ping and it would not stand in front of anyone's work. */
    pingWanted: ({ context, event }) => {
      if (!('output' in event)) return false;
      const output = event.output as ProbeOutput;
      // Judged against the baseline with this sample folded in, as recordProbe is about to store it.
      const measures = {
        ...context.measures,
        ...updateBaseline(context.measures, output.healthMs),
        healthMs: output.healthMs,
        statusReport: output.statusReport,
      };
      return wantsInferencePing(measures, Date.now()) && context.running.size === 0 && context.queue.foreground.length === 0;
    },
    /**
     * A stream made progress lately (within a health interval, and never less than a few of the streams'
     * 1 s progress reports): the server is alive even if a probe failed.
     */
    streamInProgress: ({ context }) =>
      context.running.size > 0 && Date.now() - context.lastActivityAt < Math.max(context.healthIntervalMs, 2_500),
  },
  actions: {
    /** Enqueue a request (and watch its requester), and serve it at once when a slot is free. */
    acceptRequest: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'infer.request') return;
      const status = event.replyTo.getSnapshot().status;
      // A requester that is already gone gets nothing: its request never reaches the server.
      if (status === 'stopped' || status === 'done' || status === 'error') return;
      enqueue.sendTo('watcher', { type: 'watch', requestId: event.requestId, ref: event.replyTo } satisfies WatcherCommand);
      const now = Date.now();
      applyPlan(enqueue, context, planDispatch({ ...context, queue: enqueueRequest(context.queue, event, now) }, now, context.maxBackgroundWaitMs));
    }),
    /** A waiting request leaves the queue without reaching the server; a running one is aborted (draining). */
    cancelRequest: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'infer.cancel') return;
      const { queue, removed } = removeRequest(context.queue, event.requestId);
      if (removed) {
        enqueue.sendTo(removed.event.replyTo, { type: 'infer.cancelled', requestId: event.requestId } satisfies BackendReply);
        enqueue.sendTo('watcher', { type: 'unwatch', requestId: event.requestId } satisfies WatcherCommand);
        applyPlan(enqueue, context, planDispatch({ ...context, queue }, Date.now(), context.maxBackgroundWaitMs), true);
        return;
      }
      const running = context.running.get(event.requestId);
      const slot = running && context.slots[running.slot];
      if (slot) enqueue.sendTo(slot, { type: 'slot.cancel', requestId: event.requestId });
    }),
    /** A slot's request has settled (completed, failed, or drained after a cancel): serve the next one. */
    releaseSlot: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'slot.released') return;
      enqueue.sendTo('watcher', { type: 'unwatch', requestId: event.requestId } satisfies WatcherCommand);
      const running = new Map(context.running);
      running.delete(event.requestId);
      const freed = { queue: context.queue, running, freeSlots: [...context.freeSlots, event.slot] };
      applyPlan(enqueue, context, planDispatch(freed, Date.now(), context.maxBackgroundWaitMs), true);
    }),
    noteActivity: assign({ lastActivityAt: () => Date.now() }),
    recordProbe: assign(({ context, event }) => {
      const output = (event as unknown as { output: ProbeOutput }).output;
      const measures: HealthMeasures = {
        ...context.measures,
        ...updateBaseline(context.measures, output.healthMs),
        healthMs: output.healthMs,
        statusReport: output.statusReport,
      };
      return { measures, lastProbeError: null };
    }),
    recordProbeFailure: assign({
      lastProbeError: ({ event }) => {
        const error = (event as unknown as { error: unknown }).error;
        const reason = typeof error === 'object' && error !== null && 'reason' in error ? String(error.reason) : 'backend_unavailable';
        return reason;
      },
    }),
    recordPingAttempt: assign({ measures: ({ context }) => ({ ...context.measures, pingAttemptAt: Date.now() }) }),
    recordPing: assign({
      measures: ({ context, event }) =>
        event.type === 'ping.measured'
          ? { ...context.measures, inferenceMs: event.latencyMs, inferenceAt: Date.now() }
          : context.measures,
    }),
    emitUp: emit(({ context }) => ({ type: 'backend.up' as const, name: context.name, healthMs: context.measures.healthMs })),
    emitDown: emit(({ context }) => ({
      type: 'backend.down' as const,
      name: context.name,
      reason: context.lastProbeError ?? 'backend_unavailable',
    })),
  },
}).createMachine({
  id: 'backend',
  type: 'parallel',
  context: ({ input, spawn }) => ({
    ...input,
    queue: EMPTY_QUEUE,
    slots: Array.from({ length: input.concurrency }, (_, slot) => spawn('inferenceSlot', { id: `slot:${slot}`, input: { slot } })),
    freeSlots: Array.from({ length: input.concurrency }, (_, slot) => slot),
    running: new Map(),
    measures: INITIAL_MEASURES,
    lastActivityAt: 0,
    lastProbeError: null,
  }),
  invoke: { id: 'watcher', src: 'requesterWatcher' },
  states: {
    mailbox: {
      initial: 'idle',
      on: {
        'infer.request': { actions: 'acceptRequest' },
        'infer.cancel': { actions: 'cancelRequest' },
        'slot.released': { actions: 'releaseSlot' },
        'backend.activity': { actions: 'noteActivity' },
      },
      states: {
        idle: { always: { guard: 'hasRunning', target: 'serving' } },
        serving: {
          always: [
            { guard: 'allSlotsTaken', target: 'saturated' },
            { guard: not('hasRunning'), target: 'idle' },
          ],
        },
        saturated: { always: { guard: not('allSlotsTaken'), target: 'serving' } },
      },
    },
    health: {
      initial: 'unknown',
      states: {
        unknown: {
          invoke: {
            id: 'probe',
            src: 'probeBackend',
            input: ({ context }) => ({ name: context.name }),
            onDone: { target: 'up', actions: 'recordProbe' },
            onError: { target: 'down', actions: 'recordProbeFailure' },
          },
        },
        up: {
          entry: 'emitUp',
          initial: 'waiting',
          states: {
            waiting: { after: { healthInterval: 'probing' } },
            probing: {
              invoke: {
                id: 'probe',
                src: 'probeBackend',
                input: ({ context }) => ({ name: context.name }),
                onDone: [
                  { guard: 'pingWanted', target: 'pinging', actions: 'recordProbe' },
                  { target: 'waiting', actions: 'recordProbe' },
                ],
                onError: [
                  { guard: 'streamInProgress', target: 'waiting' },
                  { target: '#backend.health.down', actions: 'recordProbeFailure' },
                ],
              },
            },
            pinging: {
              entry: 'recordPingAttempt',
              invoke: { id: 'ping', src: 'inferencePing', input: ({ self }) => ({ backend: self }) },
              on: {
                'ping.measured': { target: 'waiting', actions: 'recordPing' },
                'ping.failed': 'waiting',
              },
            },
          },
        },
        down: {
          entry: 'emitDown',
          initial: 'waiting',
          states: {
            waiting: { after: { healthInterval: 'probing' } },
            probing: {
              invoke: {
                id: 'probe',
                src: 'probeBackend',
                input: ({ context }) => ({ name: context.name }),
                onDone: { target: '#backend.health.up', actions: 'recordProbe' },
                onError: { target: 'waiting', actions: 'recordProbeFailure' },
              },
            },
          },
        },
      },
    },
  },
});
