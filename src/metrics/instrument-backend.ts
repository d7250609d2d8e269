import type { InferenceClient } from '../actors/inference/types.js';
import type { BackendActor } from '../runtime/backend-registry.js';
import type { BackendMetrics, CallOutcome } from './create-metrics.js';

/**
 * The client with each call timed into the backend's metrics: inference calls by kind and outcome (a call
 * whose signal was aborted is `cancelled`), and the health probe (`listModels`). The calls themselves are
 * passed through unchanged.
 */
export function timedClient(client: InferenceClient, backend: string, metrics: BackendMetrics): InferenceClient {
  const timed = async <T>(signal: AbortSignal, call: () => Promise<T>, observe: (outcome: CallOutcome, seconds: number) => void): Promise<T> => {
    const started = performance.now();
    try {
      const result = await call();
      observe('ok', (performance.now() - started) / 1000);
      return result;
    } catch (error) {
      observe(signal.aborted ? 'cancelled' : 'error', (performance.now() - started) / 1000);
      throw error;
    }
  };
  return {
    complete: (request, signal) =>
      timed(signal, () => client.complete(request, signal), (outcome, seconds) => metrics.inference(backend, 'complete', outcome, seconds)),
    stream: (request, options) =>
      timed(options.signal, () => client.stream(request, options), (outcome, seconds) => metrics.inference(backend, 'stream', outcome, seconds)),
    listModels: (signal) =>
      timed(signal, () => client.listModels(signal), (outcome, seconds) => metrics.healthProbe(backend, outcome === 'ok' ? 'ok' : 'error', seconds)),
    fetchStatus: (signal) => client.fetchStatus(signal),
  };
}

/**
 * Times each slot of a backend actor from the moment it turns `draining` (its request was cancelled while
 * running) until it holds something else: read from the actor's snapshots, so the machine is unchanged.
 */
export function watchSlotDrains(actor: BackendActor, backend: string, metrics: BackendMetrics): void {
  /** Draining slots: index → the request being drained and since when (`performance.now()`). */
  const draining = new Map<number, { requestId: string; since: number }>();
  actor.subscribe({
    next: (snapshot) => {
      const { slots } = snapshot.context;
      for (const [index, slot] of slots.entries()) {
        const drain = draining.get(index);
        const drainsNow = slot.status === 'draining' ? slot.requestId : null;
        if (drain !== undefined && drain.requestId !== drainsNow) {
          draining.delete(index);
          metrics.slotDrained(backend, (performance.now() - drain.since) / 1000);
        }
        if (drainsNow !== null && !draining.has(index)) draining.set(index, { requestId: drainsNow, since: performance.now() });
      }
    },
    // The registry's own subscription logs the actor's failure.
    error: () => undefined,
  });
}
