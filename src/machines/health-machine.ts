import { assign, fromCallback, fromPromise, sendParent, setup, type AnyActorRef } from 'xstate';
import type { BackendStatusReport } from '../actors/inference/types.js';
import type { BackendReply } from './backend-protocol.js';
import { INITIAL_MEASURES, updateBaseline, wantsInferencePing, type HealthMeasures } from './load-estimate.js';

/** What the mailbox tells its health machine about work in flight, read when a guard needs it. */
export interface MailboxView {
  busySlots: number;
  waiting: number;
  /** Last time a stream made progress (epoch ms). */
  lastActivityAt: number;
}

export interface HealthMachineInput {
  name: string;
  healthIntervalMs: number;
  /** The wall clock (epoch ms) of the load rules; see `BackendMachineInput.now`. */
  now: () => number;
  /** The backend actor: pings are requests to it, and its snapshot says whether a slot is busy. */
  backend: AnyActorRef;
  /** Reads the backend's current mailbox view. */
  view: () => MailboxView;
}

export interface HealthContext extends HealthMachineInput {
  measures: HealthMeasures;
  /** Sanitized reason of the last failed probe. */
  lastProbeError: string | null;
  /** What the last failed probe said (our own sentence: the server's address and the cause), for the log. */
  lastProbeDetail: string | null;
}

/** What the `probeBackend` actor measures. */
export interface ProbeOutput {
  healthMs: number;
  statusReport: BackendStatusReport | null;
}

export interface ProbeInput {
  name: string;
}

/** Input of the `inferencePing` actor: it is a requester of its own backend, at background priority. */
export interface PingInput {
  backend: AnyActorRef;
}

/** What the ping measured: the latency of a one-token completion, or that it failed. */
export type PingEvent = { type: 'ping.measured'; latencyMs: number } | { type: 'ping.failed' };

/** Sent by the backend when a request of its succeeded: proof of life, whatever the last probe said. */
export interface AliveEvent {
  type: 'health.alive';
}

/** Sent to the backend when liveness changes; the backend emits them to its subscribers. */
export type HealthChangedEvent =
  | { type: 'health.up'; healthMs: number }
  | { type: 'health.down'; reason: string; detail?: string };

/**
 * The health of one backend: probes `GET /models` every `healthInterval` — `unknown` until the first
 * answer, then `up` or `down`; while `up` it may ping the model itself (`pinging`) when the hybrid load
 * rule asks for it and no slot is in use. A probe also checks that the server lists the configured model
 * (`model_missing` otherwise). A request that succeeded (`health.alive`) is proof of life at once, and a
 * stream that made progress lately is proof of life when a probe fails. Each change of liveness is
 * reported to the backend once.
 */
export const healthMachine = setup({
  types: {
    input: {} as HealthMachineInput,
    context: {} as HealthContext,
    events: {} as PingEvent | AliveEvent,
  },
  actors: {
    // Supplied by the runtime through `.provide()`.
    probeBackend: fromPromise<ProbeOutput, ProbeInput>(async () => {
      throw new Error('probeBackend is not provided');
    }),
    inferencePing: fromCallback<BackendReply, PingInput>(() => {
      throw new Error('inferencePing is not provided');
    }),
  },
  delays: {
    healthInterval: ({ context }) => context.healthIntervalMs,
  },
  guards: {
    /** The hybrid rule wants a ping, and it would not stand in front of anyone's work. */
    pingWanted: ({ context, event }) => {
      const output = (event as unknown as { output: ProbeOutput }).output;
      // Judged against the baseline with this sample folded in, as recordProbe is about to store it.
      const measures = {
        ...context.measures,
        ...updateBaseline(context.measures, output.healthMs),
        healthMs: output.healthMs,
        statusReport: output.statusReport,
      };
      const view = context.view();
      return wantsInferencePing(measures, context.now()) && view.busySlots === 0 && view.waiting === 0;
    },
    /**
     * A stream made progress lately (within a health interval, and never less than a few of the streams'
     * 1 s progress reports): the server is alive even if a probe failed.
     */
    streamInProgress: ({ context }) => {
      const view = context.view();
      return view.busySlots > 0 && context.now() - view.lastActivityAt < Math.max(context.healthIntervalMs, 2_500);
    },
  },
  actions: {
    recordProbe: assign(({ context, event }) => {
      const output = (event as unknown as { output: ProbeOutput }).output;
      const measures: HealthMeasures = {
        ...context.measures,
        ...updateBaseline(context.measures, output.healthMs),
        healthMs: output.healthMs,
        statusReport: output.statusReport,
      };
      return { measures, lastProbeError: null, lastProbeDetail: null };
    }),
    recordProbeFailure: assign({
      lastProbeError: ({ event }) => {
        const error = (event as unknown as { error: unknown }).error;
        return typeof error === 'object' && error !== null && 'reason' in error ? String(error.reason) : 'backend_unavailable';
      },
      lastProbeDetail: ({ event }) => {
        const error = (event as unknown as { error: unknown }).error;
        return error instanceof Error ? error.message : null;
      },
    }),
    clearProbeError: assign({ lastProbeError: null, lastProbeDetail: null }),
    recordPingAttempt: assign({ measures: ({ context }) => ({ ...context.measures, pingAttemptAt: context.now() }) }),
    recordPing: assign({
      measures: ({ context, event }) =>
        event.type === 'ping.measured' ? { ...context.measures, inferenceMs: event.latencyMs, inferenceAt: context.now() } : context.measures,
    }),
    reportUp: sendParent(({ context }): HealthChangedEvent => ({ type: 'health.up', healthMs: context.measures.healthMs })),
    reportDown: sendParent(
      ({ context }): HealthChangedEvent => ({
        type: 'health.down',
        reason: context.lastProbeError ?? 'backend_unavailable',
        ...(context.lastProbeDetail === null ? {} : { detail: context.lastProbeDetail }),
      }),
    ),
  },
}).createMachine({
  id: 'health',
  context: ({ input }) => ({ ...input, measures: INITIAL_MEASURES, lastProbeError: null, lastProbeDetail: null }),
  initial: 'unknown',
  states: {
    unknown: {
      on: { 'health.alive': 'up' },
      invoke: {
        id: 'probe',
        src: 'probeBackend',
        input: ({ context }) => ({ name: context.name }),
        onDone: { target: 'up', actions: 'recordProbe' },
        onError: { target: 'down', actions: 'recordProbeFailure' },
      },
    },
    up: {
      entry: 'reportUp',
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
              { target: '#health.down', actions: 'recordProbeFailure' },
            ],
          },
        },
        pinging: {
          entry: 'recordPingAttempt',
          invoke: { id: 'ping', src: 'inferencePing', input: ({ context }) => ({ backend: context.backend }) },
          on: {
            'ping.measured': { target: 'waiting', actions: 'recordPing' },
            'ping.failed': 'waiting',
          },
        },
      },
    },
    down: {
      entry: 'reportDown',
      on: { 'health.alive': { target: 'up', actions: 'clearProbeError' } },
      initial: 'waiting',
      states: {
        waiting: { after: { healthInterval: 'probing' } },
        probing: {
          invoke: {
            id: 'probe',
            src: 'probeBackend',
            input: ({ context }) => ({ name: context.name }),
            onDone: { target: '#health.up', actions: 'recordProbe' },
            onError: { target: 'waiting', actions: 'recordProbeFailure' },
          },
        },
      },
    },
  },
});
