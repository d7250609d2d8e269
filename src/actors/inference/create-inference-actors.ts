import { randomUUID } from 'node:crypto';
import { fromCallback, fromPromise, type AnyActorRef, type Subscription } from 'xstate';
import { BackendUnavailableError, CancelledError, toErrorInfo } from '../../errors.js';
import type { BackendReply, InferCancelEvent, InferRequestEvent } from '../../machines/backend-protocol.js';
import type { CallBackendInput, WatcherCommand } from '../../machines/backend-machine.js';
import type { PingEvent, PingInput, ProbeInput, ProbeOutput } from '../../machines/health-machine.js';
import type { CallCommand, CallEvent } from '../../machines/mailbox-plan.js';
import type { InferenceClient } from './types.js';

export interface InferenceActorsDeps {
  client: InferenceClient;
  /** The model the backend is configured for: a server that does not list it is down (`model_missing`). */
  model: string;
  /** Upper bound on one health probe (models list plus status). */
  probeTimeoutMs: number;
  /** Upper bound on one inference ping; a ping that takes this long counts as this latency. */
  pingTimeoutMs?: number;
  /** How long an aborted call may take to settle before its slot is freed anyway. */
  drainGraceMs?: number;
  /** The clock a probe's and an inference ping's latency are read on (default `performance.now`); tests simulate it. */
  now?: () => number;
}

/** Streams report progress to their backend at most this often (proof of life for the health region). */
const PROGRESS_EVERY_MS = 1_000;

/**
 * The side-effecting actors of a backend machine, closed over one backend's client. The machine names them;
 * this factory is the only place that does I/O, always with the actor's abort signal.
 */
export function createInferenceActors({ client, model, probeTimeoutMs, pingTimeoutMs = 30_000, drainGraceMs = 10_000, now = () => performance.now() }: InferenceActorsDeps) {
  /**
   * A slot's HTTP calls, one at a time: `call.start` begins one, `call.abort` aborts it; chunks go straight
   * to the requester, the outcome back to the backend. Long-lived so that a slot costs no actor per
   * request and an aborted call can still report when it has settled (the slot is `draining` until then).
   */
  const callBackend = fromCallback<CallCommand, CallBackendInput>(({ input, sendBack, receive }) => {
    const { slot } = input;
    let current: { requestId: string; controller: AbortController; settled: boolean; drainTimer?: NodeJS.Timeout } | null = null;

    const settle = (call: NonNullable<typeof current>, event: CallEvent): void => {
      if (call.settled) return;
      call.settled = true;
      clearTimeout(call.drainTimer);
      sendBack(event);
    };

    const start = (command: Extract<CallCommand, { type: 'call.start' }>): void => {
      const { requestId, replyTo } = command;
      const call: NonNullable<typeof current> = { requestId, controller: new AbortController(), settled: false };
      current = call;
      let sawFirstByte = false;
      let lastProgress = 0;
      // Chunks parsed from one network read are coalesced into one message, flushed at the end of the
      // current job: the requester gets the same text in the same order, with one actor message per read
      // instead of per token (a burst of 50 tokens in one TCP packet costs one send, not 50).
      let buffered = '';
      const flush = (): void => {
        if (buffered.length === 0) return;
        const text = buffered;
        buffered = '';
        if (!call.settled && !call.controller.signal.aborted) replyTo.send({ type: 'infer.chunk', requestId, text } satisfies BackendReply);
      };
      const onContent = (text: string): void => {
        if (call.settled || call.controller.signal.aborted) return;
        if (!sawFirstByte) {
          sawFirstByte = true;
          lastProgress = performance.now();
          sendBack({ type: 'call.firstByte', slot, requestId, at: lastProgress } satisfies CallEvent);
        } else if (buffered.length === 0) {
          const now = performance.now();
          if (now - lastProgress >= PROGRESS_EVERY_MS) {
            lastProgress = now;
            sendBack({ type: 'call.progress', slot, requestId } satisfies CallEvent);
          }
        }
        if (buffered.length === 0) queueMicrotask(flush);
        buffered += text;
      };
      const pending =
        command.kind === 'stream'
          ? client.stream(command.request, { signal: call.controller.signal, onContent })
          : client.complete(command.request, call.controller.signal);
      pending.then(
        (result) => {
          flush();
          settle(call, { type: 'call.done', slot, requestId, result, at: performance.now() });
        },
        (error: unknown) => {
          const event: CallEvent = { type: 'call.failed', slot, requestId, error: toErrorInfo(error) };
          // An aborted call has destroyed its socket; one turn of the event loop lets the close go out
          // before the slot takes the next request, so a single-slot server never sees the two overlap.
          if (call.controller.signal.aborted) setImmediate(() => settle(call, event));
          else settle(call, event);
        },
      );
    };

    receive((command) => {
      if (command.type === 'call.start') {
        start(command);
        return;
      }
      const call = current;
      if (!call || call.requestId !== command.requestId || call.settled) return;
      call.controller.abort();
      // An HTTP client that never settles after an abort must not hold the slot for ever.
      call.drainTimer = setTimeout(
        () => settle(call, { type: 'call.failed', slot, requestId: call.requestId, error: new CancelledError('abort did not settle').toInfo() }),
        drainGraceMs,
      );
    });

    return () => {
      // Aborting creates a DOMException: only do it for a call still in flight.
      if (current && !current.settled) {
        clearTimeout(current.drainTimer);
        current.controller.abort();
      }
    };
  });

  /**
   * One health probe: `GET /models` timed (the configured model must be listed), then the optional status
   * API (whose failure is not a down).
   */
  const probeBackend = fromPromise<ProbeOutput, ProbeInput>(async ({ signal }) => {
    const bounded = AbortSignal.any([signal, AbortSignal.timeout(probeTimeoutMs)]);
    const started = now();
    try {
      const models = await client.listModels(bounded);
      if (!models.includes(model)) throw new BackendUnavailableError('model_missing', `the server does not list the model "${model}"`);
    } catch (error) {
      if (error instanceof CancelledError && !signal.aborted) {
        throw new BackendUnavailableError('backend_timeout', 'health probe timed out');
      }
      throw error;
    }
    const healthMs = Math.round((now() - started) * 10) / 10;
    const statusReport = await client.fetchStatus(bounded).catch(() => null);
    return { healthMs, statusReport };
  });

  /** A one-token completion through the backend's own mailbox, at background priority, timed end to end. */
  const inferencePing = fromCallback<BackendReply, PingInput>(({ input, self, sendBack, receive }) => {
    const requestId = `ping-${randomUUID()}`;
    const started = now();
    let settled = false;
    const finish = (event: PingEvent): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sendBack(event);
    };
    const cancel = (): void => input.backend.send({ type: 'infer.cancel', requestId } satisfies InferCancelEvent);
    const timer = setTimeout(() => {
      cancel();
      finish({ type: 'ping.measured', latencyMs: now() - started });
    }, pingTimeoutMs);

    receive((reply) => {
      if (reply.type === 'infer.done') finish({ type: 'ping.measured', latencyMs: now() - started });
      // A ping that timed out measured at least that much latency: the server is that slow.
      else if (reply.type === 'infer.error' && reply.error.reason === 'backend_timeout') {
        finish({ type: 'ping.measured', latencyMs: now() - started });
      } else if (reply.type === 'infer.error' || reply.type === 'infer.cancelled') finish({ type: 'ping.failed' });
    });
    input.backend.send({
      type: 'infer.request',
      requestId,
      priority: 'background',
      kind: 'complete',
      request: { messages: [{ role: 'user', content: 'ping' }], maxTokens: 1 },
      replyTo: self,
    } satisfies InferRequestEvent);

    return () => {
      clearTimeout(timer);
      if (!settled) cancel();
    };
  });

  /** Watches requesters; one that stops has its request cancelled, queued or running. */
  const requesterWatcher = fromCallback<WatcherCommand>(({ receive, sendBack }) => {
    const watched = new Map<string, Subscription>();
    receive((command) => {
      if (command.type === 'watch') {
        const gone = (): void => {
          watched.delete(command.requestId);
          sendBack({ type: 'infer.cancel', requestId: command.requestId } satisfies InferCancelEvent);
        };
        watched.set(command.requestId, subscribeToEnd(command.ref, gone));
      } else {
        watched.get(command.requestId)?.unsubscribe();
        watched.delete(command.requestId);
      }
    });
    return () => {
      for (const subscription of watched.values()) subscription.unsubscribe();
      watched.clear();
    };
  });

  return { callBackend, probeBackend, inferencePing, requesterWatcher };
}

/** Calls `onEnd` once when the actor stops, finishes or fails. */
function subscribeToEnd(ref: AnyActorRef, onEnd: () => void): Subscription {
  return ref.subscribe({ complete: onEnd, error: onEnd });
}
