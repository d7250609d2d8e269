import { maskUrlPassword } from '../config/mask-secrets.js';
import { createActor, type Actor, type InspectionEvent } from 'xstate';
import type { Logger } from 'pino';
import { createOpenAIClient } from '../actors/inference/openai-client.js';
import type { InferenceClient } from '../actors/inference/types.js';
import type { BackendConfig } from '../config/config-schema.js';
import type { backendMachine } from '../machines/backend-machine.js';
import { estimateLoad, type LoadLevel, type LoadSource } from '../machines/load-estimate.js';
import { countBusySlots } from '../machines/mailbox-plan.js';
import type { BackendMetrics } from '../metrics/create-metrics.js';
import { timedClient, watchSlotDrains } from '../metrics/instrument-backend.js';
import { queueSize } from '../machines/request-queue.js';
import { provideBackendMachine } from './provide-backend-machine.js';

export type BackendActor = Actor<typeof backendMachine>;

/** One backend's entry in `GET /status` (DESIGN §5). */
export interface BackendStatus {
  state: 'up' | 'down' | 'unknown';
  load: LoadLevel;
  source: LoadSource;
  queue: { waiting: number; running: number };
  healthMs: number;
  /** Why it is down (`backend_unavailable`, `backend_timeout`, `model_missing`, …); only when `down`. */
  reason?: string;
}

export interface BackendRegistryDeps {
  log: Logger;
  /** The longest answer read from a model (`limits.answerChars`); beyond it a call ends `answer_too_long`. */
  maxAnswerChars?: number;
  /** Builds the client of a backend; tests may wrap the real one. */
  createClient?: (name: string, config: BackendConfig) => InferenceClient;
  /** Sees each backend actor and its health machine (the Stately inspector); none when absent. */
  inspect?: (event: InspectionEvent) => void;
  /** Where each backend's calls, probes and slot drains are timed (the runtime's metrics). */
  metrics?: BackendMetrics;
}

/** Reads the liveness, load and queue of a backend actor's current snapshot. */
export function readBackendStatus(actor: BackendActor, now = Date.now()): BackendStatus {
  const { context } = actor.getSnapshot();
  const health = context.health.getSnapshot();
  const state = health.matches('up') ? 'up' : health.matches('down') ? 'down' : 'unknown';
  const queue = { waiting: queueSize(context.queue), running: countBusySlots(context) };
  const { load, source } = estimateLoad(health.context.measures, queue, now);
  const status: BackendStatus = { state, load, source, queue, healthMs: health.context.measures.healthMs };
  if (state === 'down') status.reason = health.context.lastProbeError ?? 'backend_unavailable';
  return status;
}

/**
 * Every configured backend as a running actor, by name. Each actor gets its own client and its own
 * child logger; liveness changes are logged once per change.
 */
export class BackendRegistry {
  private readonly actors = new Map<string, BackendActor>();

  constructor(backends: Readonly<Record<string, BackendConfig>>, deps: BackendRegistryDeps) {
    for (const [name, config] of Object.entries(backends)) {
      const log = deps.log.child({ backend: name });
      const created = deps.createClient?.(name, config) ?? createOpenAIClient({ ...clientOptions(config), ...(deps.maxAnswerChars === undefined ? {} : { maxAnswerChars: deps.maxAnswerChars }) });
      const client = deps.metrics === undefined ? created : timedClient(created, name, deps.metrics);
      const machine = provideBackendMachine({ client, model: config.model, probeTimeoutMs: Math.min(10_000, config.healthIntervalMs) });
      const actor = createActor(machine, {
        id: `backend:${name}`,
        ...(deps.inspect ? { inspect: deps.inspect } : {}),
        input: {
          name,
          concurrency: config.concurrency,
          maxBackgroundWaitMs: config.backgroundMaxWaitMs,
          healthIntervalMs: config.healthIntervalMs,
        },
      });
      // An unobserved actor error would be an uncaught exception: log it instead.
      actor.subscribe({ error: (error) => log.error({ err: error }, 'backend actor failed') });
      if (deps.metrics !== undefined) watchSlotDrains(actor, name, deps.metrics);
      const url = maskUrlPassword(config.baseUrl);
      actor.on('backend.up', (event) => log.info({ url, model: config.model, healthMs: event.healthMs }, `backend up (${url})`));
      // The line says where and why — refused, timed out, an HTTP status, the model missing — from the
      // operator's own config and our own error sentences, never user data.
      actor.on('backend.down', (event) => {
        const cause =
          event.reason === 'model_missing' ? `the server does not list the model "${config.model}"` : (event.detail ?? event.reason.replace(/_/g, ' '));
        log.warn({ reason: event.reason, url, model: config.model }, `backend down (${url}): ${cause}`);
      });
      this.actors.set(name, actor);
    }
  }

  start(): void {
    for (const actor of this.actors.values()) actor.start();
  }

  get(name: string): BackendActor | undefined {
    return this.actors.get(name);
  }

  names(): string[] {
    return [...this.actors.keys()];
  }

  status(): Record<string, BackendStatus> {
    const now = Date.now();
    return Object.fromEntries([...this.actors].map(([name, actor]) => [name, readBackendStatus(actor, now)]));
  }

  /** Stops every backend actor; running HTTP requests are aborted through their actors' signals. */
  stop(): void {
    for (const actor of this.actors.values()) actor.stop();
  }
}

function clientOptions(config: BackendConfig) {
  return {
    baseUrl: config.baseUrl,
    model: config.model,
    statusUrl: config.statusUrl,
    connectTimeoutMs: config.connectTimeoutMs,
    firstByteTimeoutMs: config.timeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    timeoutMs: config.timeoutMs,
    streamDeadlineMs: config.streamDeadlineMs,
    ...(config.apiKey ? { apiKey: config.apiKey } : {}),
  };
}
