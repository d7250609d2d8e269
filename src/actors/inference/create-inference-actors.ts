import { randomUUID } from 'node:crypto';
import { fromCallback, fromPromise, type AnyActorRef, type Subscription } from 'xstate';
import { BackendUnavailableError, CancelledError, toErrorInfo } from '../../errors.js';
import type { BackendReply, InferCancelEvent, InferRequestEvent } from '../../machines/backend-protocol.js';
import type { PingEvent, PingInput, ProbeInput, ProbeOutput, WatcherCommand } from '../../machines/backend-machine.js';
import type { AbortCallEvent, CallBackendInput, CallEvent } from '../../machines/inference-run-machine.js';
import type { InferenceClient } from './types.js';

export interface InferenceActorsDeps {
  client: InferenceClient;
  /** Upper bound on one health probe (models list plus status). */
  probeTimeoutMs: number;
  /** Upper bound on one inference ping; a ping that takes this long counts as this latency. */
  pingTimeoutMs?: number;
}

/** Streams report progress to their backend at most this often (proof of life for the health region). */
const PROGRESS_EVERY_MS = 1_000;

/**
 * The side-effecting actors of a backend machine, closed over one backend's client. The machine names them;
 * this factory is the only place that does I/O, always with the actor's abort signal.
 */
export function createInferenceActors({ client, probeTimeoutMs, pingTimeoutMs = 30_000 }: InferenceActorsDeps) {
  /** The HTTP call of one request: chunks go straight to the requester, the outcome back to the run. */
  const callBackend = fromCallback<AbortCallEvent, CallBackendInput>(({ input, sendBack, receive }) => {
    const controller = new AbortController();
    let forwarding = true;
    let sawFirstByte = false;
    let lastProgress = 0;
    const { requestId, replyTo } = input;

    const onContent = (text: string): void => {
      if (!forwarding) return;
      const now = performance.now();
      if (!sawFirstByte) {
        sawFirstByte = true;
        lastProgress = now;
        sendBack({ type: 'call.firstByte', at: now } satisfies CallEvent);
      } else if (now - lastProgress >= PROGRESS_EVERY_MS) {
        lastProgress = now;
        sendBack({ type: 'call.progress' } satisfies CallEvent);
      }
      replyTo.send({ type: 'infer.chunk', requestId, text } satisfies BackendReply);
    };

    receive((event) => {
      if (event.type === 'abort') {
        forwarding = false;
        controller.abort();
      }
    });

    const call =
      input.kind === 'stream'
        ? client.stream(input.request, { signal: controller.signal, onContent })
        : client.complete(input.request, controller.signal);
    call.then(
      (result) => {
        sendBack({ type: 'call.done', result, at: performance.now() } satisfies CallEvent);
      },
      (error: unknown) => sendBack({ type: 'call.failed', error: toErrorInfo(error) } satisfies CallEvent),
    );

    return () => {
      forwarding = false;
      controller.abort();
    };
  });

  /** One health probe: `GET /models` timed, then the optional status API (whose failure is not a down). */
  const probeBackend = fromPromise<ProbeOutput, ProbeInput>(async ({ signal }) => {
    const bounded = AbortSignal.any([signal, AbortSignal.timeout(probeTimeoutMs)]);
    const started = performance.now();
    try {
      await client.listModels(bounded);
    } catch (error) {
      if (error instanceof CancelledError && !signal.aborted) {
        throw new BackendUnavailableError('backend_timeout', 'health probe timed out');
      }
      throw error;
    }
    const healthMs = Math.round((performance.now() - started) * 10) / 10;
    const statusReport = await client.fetchStatus(bounded).catch(() => null);
    return { healthMs, statusReport };
  });

  /** A one-token completion through the backend's own mailbox, at background priority, timed end to end. */
  const inferencePing = fromCallback<BackendReply, PingInput>(({ input, self, sendBack, receive }) => {
    const requestId = `ping-${randomUUID()}`;
    const started = performance.now();
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
      finish({ type: 'ping.measured', latencyMs: performance.now() - started });
    }, pingTimeoutMs);

    receive((reply) => {
      if (reply.type === 'infer.done') finish({ type: 'ping.measured', latencyMs: performance.now() - started });
      // A ping that timed out measured at least that much latency: the server is that slow.
      else if (reply.type === 'infer.error' && reply.error.reason === 'backend_timeout') {
        finish({ type: 'ping.measured', latencyMs: performance.now() - started });
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
