import { assign, emit, enqueueActions, fromCallback, setup, type ActorRefFrom, type AnyActorRef, type AnyEventObject } from 'xstate';
import type { BackendReply, InferCancelEvent, InferRequestEvent } from './backend-protocol.js';
import { healthMachine, type AliveEvent, type HealthChangedEvent, type MailboxView } from './health-machine.js';
import {
  announceMoves,
  countBusySlots,
  mailboxStatus,
  planDispatch,
  planRelease,
  settledReply,
  slotOf,
  type CallCommand,
  type CallEvent,
  type MailboxPlan,
  type MailboxState,
  type Outgoing,
  type Slot,
} from './mailbox-plan.js';
import { EMPTY_QUEUE, enqueueRequest, positionOf, queueSize, removeRequest } from './request-queue.js';

/** Static settings of one backend actor. */
export interface BackendMachineInput {
  name: string;
  concurrency: number;
  maxBackgroundWaitMs: number;
  healthIntervalMs: number;
  /**
   * The wall clock (epoch ms) the mailbox and health rules read: aging, activity, ping cooldowns. Tests
   * pass the clock of their `SimulatedClock`, which also drives the machines' delays. Default `Date.now`.
   */
  now?: () => number;
}

/** Input of a slot's `callBackend` actor. */
export interface CallBackendInput {
  slot: number;
}

/** Messages to the `requesterWatcher` actor. */
export type WatcherCommand = { type: 'watch'; requestId: string; ref: AnyActorRef } | { type: 'unwatch'; requestId: string };

export interface BackendContext extends Omit<BackendMachineInput, 'now'>, MailboxState {
  now: () => number;
  /** One long-lived call actor per slot: a slot costs no actor per request. */
  calls: readonly AnyActorRef[];
  health: ActorRefFrom<typeof healthMachine>;
  /** Last time a stream made progress (epoch ms): proof of life between probes. */
  lastActivityAt: number;
  /** Why the backend is down, as its health last reported; null while up (or not yet known). */
  downReason: string | null;
}

/** Emitted to subscribers (`actor.on(...)`) when the backend's liveness changes, once per change. */
export type BackendEmitted =
  | { type: 'backend.up'; name: string; healthMs: number }
  | { type: 'backend.down'; name: string; reason: string; detail?: string };

export type BackendEvent = InferRequestEvent | InferCancelEvent | CallEvent | HealthChangedEvent;

/** What the health machine reads of the mailbox. */
export function mailboxView(context: BackendContext): MailboxView {
  return { busySlots: countBusySlots(context), waiting: queueSize(context.queue), lastActivityAt: context.lastActivityAt };
}

/** The two things `applyPlan` needs of an `enqueueActions` enqueuer. */
interface PlanEnqueuer {
  assign(values: Pick<BackendContext, 'queue' | 'slots'>): void;
  sendTo(to: AnyActorRef, event: AnyEventObject): void;
}

/** Applies a mailbox plan: one assign, then the calls to start or abort and the replies to requesters. */
function applyPlan(enqueue: PlanEnqueuer, context: BackendContext, plan: MailboxPlan): void {
  if (plan.state.queue !== context.queue || plan.state.slots !== context.slots) {
    enqueue.assign({ queue: plan.state.queue, slots: plan.state.slots });
  }
  for (const { to, event } of plan.out) {
    const target = typeof to === 'number' ? context.calls[to] : to;
    // A requester that stopped is not answered (the watcher cancels its request): nothing would read it.
    if (target && !isGone(target)) enqueue.sendTo(target, event);
  }
}

/** Whether an actor has stopped, finished or failed, so that an event sent to it would be dropped. */
function isGone(ref: AnyActorRef): boolean {
  const status = ref.getSnapshot().status;
  return status === 'stopped' || status === 'done' || status === 'error';
}

type MailboxStatus = ReturnType<typeof mailboxStatus>;

/**
 * The mailbox status after an event, predicted from the context before it so that the transition can
 * name its target (cheaper than eventless transitions, and the diagram shows every edge). Invariant used:
 * requests only wait when no slot is idle, so a request that arrives takes a slot if one is idle, and a
 * settled call's slot is refilled at once when anything waits.
 */
function statusAfter(context: BackendContext, event: BackendEvent): MailboxStatus {
  let busy = countBusySlots(context);
  if (event.type === 'infer.request') {
    const status = event.replyTo.getSnapshot().status;
    const alive = status !== 'stopped' && status !== 'done' && status !== 'error';
    if (alive && busy < context.slots.length) busy++;
  } else if (event.type === 'call.done' || event.type === 'call.failed') {
    const slot = context.slots[event.slot];
    const settles = slot !== undefined && slot.status !== 'idle' && slot.requestId === event.requestId;
    if (settles && queueSize(context.queue) === 0) busy--;
  }
  return busy === 0 ? 'idle' : busy === context.slots.length ? 'saturated' : 'serving';
}

/** The three ways an event that may change the mailbox status can go, each running the same action. */
function routed(action: 'acceptRequest' | 'settleCall') {
  return [
    { guard: { type: 'leadsTo' as const, params: { status: 'idle' as const } }, target: '.idle', actions: action },
    { guard: { type: 'leadsTo' as const, params: { status: 'serving' as const } }, target: '.serving', actions: action },
    { target: '.saturated', actions: action },
  ];
}

/**
 * One inference backend as an actor: a mailbox that serializes inference, with a health sub-machine.
 *
 * Requests wait in an explicit queue (foreground before background, with aging) and are served in
 * `concurrency` slots, each `idle`, `running` or `draining` (an aborted request still settling). The
 * machine's own states say how full the slots are: `idle`, `serving` (a slot free) or `saturated`.
 * Every mailbox change is computed by the pure functions of `mailbox-plan.ts` and applied in one step.
 */
export const backendMachine = setup({
  types: {
    input: {} as BackendMachineInput,
    context: {} as BackendContext,
    events: {} as BackendEvent,
    emitted: {} as BackendEmitted,
  },
  actors: {
    health: healthMachine,
    // Supplied by the runtime through `.provide()`.
    callBackend: fromCallback<CallCommand, CallBackendInput>(() => {
      throw new Error('callBackend is not provided');
    }),
    requesterWatcher: fromCallback<WatcherCommand>(() => {
      throw new Error('requesterWatcher is not provided');
    }),
  },
  guards: {
    /** The status the mailbox will have once this event is applied (only requests and settled calls change it). */
    leadsTo: ({ context, event }, params: { status: MailboxStatus }) => statusAfter(context, event) === params.status,
    /**
     * The server does not offer the configured model: nothing it could answer would help, so requests fail
     * at once until a probe finds the model (an outage, by contrast, is tried: it may just have ended).
     */
    modelMissing: ({ context }) => context.downReason === 'model_missing',
  },
  actions: {
    refuseRequest: enqueueActions(({ event, enqueue }) => {
      if (event.type !== 'infer.request') return;
      // Like `acceptRequest`: a requester that is already gone is not answered (XState would warn of an
      // event sent to a stopped actor).
      if (isGone(event.replyTo)) return;
      const error = { code: 'backend_unavailable', reason: 'model_missing', retryable: false, message: 'the server does not offer the configured model' };
      enqueue.sendTo(event.replyTo, { type: 'infer.error', requestId: event.requestId, error } satisfies BackendReply);
    }),
    /** Enqueue a request (and watch its requester), and serve it at once when a slot is free. */
    acceptRequest: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'infer.request') return;
      // A requester that is already gone gets nothing: its request never reaches the server.
      if (isGone(event.replyTo)) return;
      enqueue.sendTo('watcher', { type: 'watch', requestId: event.requestId, ref: event.replyTo } satisfies WatcherCommand);
      const now = context.now();
      const queue = enqueueRequest(context.queue, event, now);
      applyPlan(enqueue, context, planDispatch({ queue, slots: context.slots }, now, context.maxBackgroundWaitMs, [], event));
    }),
    /** A waiting request leaves the queue without reaching the server; a running one is aborted (draining). */
    cancelRequest: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'infer.cancel') return;
      const now = context.now();
      const place = positionOf(context.queue, event.requestId, now, context.maxBackgroundWaitMs);
      const { queue, removed } = removeRequest(context.queue, event.requestId);
      if (removed) {
        if (!isGone(removed.event.replyTo)) {
          enqueue.sendTo(removed.event.replyTo, { type: 'infer.cancelled', requestId: event.requestId } satisfies BackendReply);
        }
        enqueue.sendTo('watcher', { type: 'unwatch', requestId: event.requestId } satisfies WatcherCommand);
        // Those behind it move up one place.
        const out: Outgoing[] = [];
        if (place !== undefined) announceMoves(queue, now, context.maxBackgroundWaitMs, 1, place, out);
        applyPlan(enqueue, context, planDispatch({ queue, slots: context.slots }, now, context.maxBackgroundWaitMs, out));
        return;
      }
      const index = slotOf(context, event.requestId);
      const slot = context.slots[index];
      if (!slot || slot.status !== 'running') return;
      const slots = context.slots.with(index, { ...slot, status: 'draining' });
      applyPlan(enqueue, context, {
        state: { queue: context.queue, slots },
        out: [
          { to: index, event: { type: 'call.abort', requestId: event.requestId } },
          { to: slot.replyTo, event: { type: 'infer.cancelled', requestId: event.requestId } },
        ],
      });
    }),
    recordFirstByte: assign(({ context, event }) => {
      if (event.type !== 'call.firstByte') return {};
      const slot = context.slots[event.slot];
      if (!slot || slot.status !== 'running' || slot.requestId !== event.requestId) return {};
      const slots: readonly Slot[] = context.slots.with(event.slot, { ...slot, firstByteAt: event.at });
      return { slots, lastActivityAt: context.now() };
    }),
    noteActivity: assign({ lastActivityAt: ({ context }) => context.now() }),
    /** A call settled: answer the requester (unless it was cancelled), free the slot, serve the next. */
    settleCall: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'call.done' && event.type !== 'call.failed') return;
      const slot = context.slots[event.slot];
      if (!slot || slot.status === 'idle' || slot.requestId !== event.requestId) return;
      const out = slot.status === 'running' ? [{ to: slot.replyTo, event: settledReply(slot, event) }] : [];
      enqueue.sendTo('watcher', { type: 'unwatch', requestId: event.requestId } satisfies WatcherCommand);
      // An answer is proof of life, whatever the last probe said.
      if (event.type === 'call.done') enqueue.sendTo(context.health, { type: 'health.alive' } satisfies AliveEvent);
      applyPlan(enqueue, context, planRelease(context, event.slot, context.now(), context.maxBackgroundWaitMs, out));
    }),
    recordUp: assign({ downReason: null }),
    recordDown: assign({ downReason: ({ event }) => (event.type === 'health.down' ? event.reason : 'backend_unavailable') }),
    emitUp: emit(({ context, event }) => ({
      type: 'backend.up' as const,
      name: context.name,
      healthMs: event.type === 'health.up' ? event.healthMs : 0,
    })),
    emitDown: emit(({ context, event }) => ({
      type: 'backend.down' as const,
      name: context.name,
      reason: event.type === 'health.down' ? event.reason : 'backend_unavailable',
      ...(event.type === 'health.down' && event.detail !== undefined ? { detail: event.detail } : {}),
    })),
  },
}).createMachine({
  id: 'backend',
  context: ({ input, spawn, self }) => ({
    ...input,
    now: input.now ?? Date.now,
    queue: EMPTY_QUEUE,
    slots: Array.from({ length: input.concurrency }, (): Slot => ({ status: 'idle' })),
    calls: Array.from({ length: input.concurrency }, (_, slot) => spawn('callBackend', { id: `call:${slot}`, input: { slot } })),
    health: spawn('health', {
      id: 'health',
      input: {
        name: input.name,
        healthIntervalMs: input.healthIntervalMs,
        now: input.now ?? Date.now,
        backend: self,
        view: () => mailboxView(self.getSnapshot().context as BackendContext),
      },
    }),
    lastActivityAt: 0,
    downReason: null,
  }),
  invoke: { id: 'watcher', src: 'requesterWatcher' },
  on: {
    'infer.request': [{ guard: 'modelMissing', actions: 'refuseRequest' }, ...routed('acceptRequest')],
    'infer.cancel': { actions: 'cancelRequest' },
    'call.firstByte': { actions: 'recordFirstByte' },
    'call.progress': { actions: 'noteActivity' },
    'call.done': routed('settleCall'),
    'call.failed': routed('settleCall'),
    'health.up': { actions: ['recordUp', 'emitUp'] },
    'health.down': { actions: ['recordDown', 'emitDown'] },
  },
  initial: 'idle',
  states: {
    idle: {},
    serving: {},
    saturated: {},
  },
});
