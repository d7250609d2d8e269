import { randomUUID } from 'node:crypto';
import { createActor, fromCallback, type AnyActorRef } from 'xstate';
import { createOpenAIClient } from '../src/actors/inference/openai-client.js';
import type { ChatRequest } from '../src/actors/inference/types.js';
import type { BackendReply, BackendTerminalReply, RequestKind } from '../src/machines/backend-protocol.js';
import { provideBackendMachine } from '../src/runtime/provide-backend-machine.js';

/** Median and percentiles of a sample, in its own unit. */
export function stats(values: number[]): { median: number; p10: number; p90: number; p99: number } {
  const sorted = values.toSorted((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { median: at(0.5), p10: at(0.1), p90: at(0.9), p99: at(0.99) };
}

export function benchClient(baseUrl: string) {
  return createOpenAIClient({ baseUrl, model: 'bench', timeoutMs: 60_000, firstByteTimeoutMs: 60_000, streamDeadlineMs: 600_000 });
}

/**
 * A backend actor plus one long-lived requester actor that routes replies to promises: the cheapest
 * requester there can be, so what is measured is the mailbox.
 */
export function benchBackend(baseUrl: string, concurrency: number) {
  const client = benchClient(baseUrl);
  const backend = createActor(provideBackendMachine({ client, model: 'bench', probeTimeoutMs: 5_000 }), {
    input: { name: 'bench', concurrency, maxBackgroundWaitMs: 10_000, healthIntervalMs: 3_600_000 },
  }).start();
  const pending = new Map<string, { resolve: (r: BackendTerminalReply) => void; onChunk?: (text: string) => void }>();
  const requester: AnyActorRef = createActor(
    fromCallback<BackendReply>(({ receive }) => {
      receive((reply) => {
        const entry = pending.get(reply.requestId);
        if (!entry) return;
        if (reply.type === 'infer.chunk') entry.onChunk?.(reply.text);
        else if (reply.type === 'infer.done' || reply.type === 'infer.error' || reply.type === 'infer.cancelled') {
          pending.delete(reply.requestId);
          entry.resolve(reply);
        }
      });
    }),
  ).start();
  const send = (request: ChatRequest, kind: RequestKind, onChunk?: (text: string) => void): Promise<BackendTerminalReply> => {
    const requestId = randomUUID();
    return new Promise((resolve) => {
      pending.set(requestId, { resolve, onChunk });
      backend.send({ type: 'infer.request', requestId, priority: 'foreground', kind, request, replyTo: requester });
    });
  };
  return { client, backend, send, stop: () => (backend.stop(), requester.stop()) };
}
