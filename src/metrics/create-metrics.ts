import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { LOAD_LEVELS } from '../machines/load-estimate.js';
import type { JobOutcome } from '../machines/job-machine.js';
import type { StatusBody } from '../runtime/runtime.js';

/** What a WebSocket endpoint holds right now, read at each scrape. */
export interface WebSocketGauges {
  connections: number;
  /** Bytes written to sockets but not yet sent, plus frames waiting in the connections' own queues. */
  bufferedBytes: number;
}

/** What the transports see of the metrics, through `Runtime.metrics`. */
export interface GatewayMetrics {
  /** The content type of {@link GatewayMetrics.scrape}'s text (Prometheus text format 0.0.4). */
  readonly contentType: string;
  /** Every metric in Prometheus text format; the gauges are read from their sources now. */
  scrape(): Promise<string>;
  /** Adds a WebSocket endpoint whose gauges are read at each scrape; returns the function that removes it. */
  watchWebSockets(read: () => WebSocketGauges): () => void;
  /** A Synology post failed and will be tried again. */
  countSynologyRetry(): void;
}

export type InferenceKind = 'stream' | 'complete';
export type CallOutcome = 'ok' | 'error' | 'cancelled';

/** What a backend's instrumentation reports (see `instrument-backend.ts`); `backend` is a configured name. */
export interface BackendMetrics {
  inference(backend: string, kind: InferenceKind, outcome: CallOutcome, seconds: number): void;
  healthProbe(backend: string, outcome: 'ok' | 'error', seconds: number): void;
  /** A cancelled request's slot was freed after draining this long. */
  slotDrained(backend: string, seconds: number): void;
}

/** The metrics of one runtime: what transports see, and what the runtime and its parts report into. */
export interface Metrics extends GatewayMetrics {
  readonly registry: Registry;
  readonly backends: BackendMetrics;
  /** A job ended (the hub's `onEnded`). */
  jobEnded(outcome: Pick<JobOutcome, 'status' | 'branch' | 'reason' | 'firstByteMs' | 'totalMs'>): void;
  /** A store write was committed after waiting this long in the ordered writer. */
  journalWriteCommitted(waitedMs: number): void;
}

/** The branches a job can take (`JobOutcome.branch`); anything else is counted as `other`, none as `none`. */
const BRANCHES = new Set(['direct', 'clarify', 'systemStatus', 'tools', 'route', 'mode']);
/** The reasons of DESIGN §4 and the docs; another is counted as `other`, so label values stay few. */
const REASONS = new Set([
  'backend_unavailable',
  'backend_timeout',
  'backend_disconnected',
  'backend_rejected',
  'backend_protocol_error',
  'model_missing',
  'stream_deadline_exceeded',
  'answer_too_long',
  'empty_answer',
  'tool_timeout',
  'tool_failed',
  'store_unavailable',
  'interrupted',
  'internal',
  'cancelled',
]);
const BACKEND_STATES = ['up', 'down', 'unknown'] as const;

/** Seconds: a job, an inference call (a reasoner may stream for minutes). */
const LONG_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300];
/** Seconds: waits that should be short (a probe, a drain, a write in the queue). */
const SHORT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Node's process metrics (CPU, memory, event loop lag, GC): one registry per process, shared by every
 * runtime in it, because they describe the process and their collectors (a GC observer, an event-loop
 * monitor) cannot be stopped. Never prom-client's global registry.
 */
let processRegistry: Registry | undefined;
function processMetrics(): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/**
 * The Prometheus metrics of one runtime, in a registry of its own (tests run several gateways in one
 * process). Counters and histograms are fed by the runtime's parts as things happen; gauges are read from
 * `status` (backends, jobs) and the watched WebSocket endpoints at each scrape. Every label value comes
 * from the config (backend names) or a fixed set: never ids, owners or text.
 */
export function createMetrics(sources: { status: () => StatusBody }): Metrics {
  const own = new Registry();
  const registers = [own];
  const jobs = new Counter({
    name: 'switchboard_jobs_total',
    help: 'Jobs ended, by the branch they took, how they ended and why (reason "none" unless an error).',
    labelNames: ['branch', 'status', 'reason'] as const,
    registers,
  });
  const jobDuration = new Histogram({
    name: 'switchboard_job_duration_seconds',
    help: 'From acceptance to the terminal event, by branch and status.',
    labelNames: ['branch', 'status'] as const,
    buckets: LONG_BUCKETS,
    registers,
  });
  const firstChunk = new Histogram({
    name: 'switchboard_job_first_chunk_seconds',
    help: 'From acceptance to the first streamed chunk of the answer, by branch (jobs that streamed one).',
    labelNames: ['branch'] as const,
    buckets: LONG_BUCKETS,
    registers,
  });
  const jobsNow = new Gauge({
    name: 'switchboard_jobs_in_flight',
    help: 'Jobs running (state "active") and waiting for a place (state "pending").',
    labelNames: ['state'] as const,
    registers,
  });
  const queueWaiting = new Gauge({
    name: 'switchboard_backend_queue_waiting',
    help: "Requests waiting in a backend's mailbox.",
    labelNames: ['backend'] as const,
    registers,
  });
  const queueRunning = new Gauge({
    name: 'switchboard_backend_queue_running',
    help: "Requests holding a backend's slots (running or draining).",
    labelNames: ['backend'] as const,
    registers,
  });
  const backendState = new Gauge({
    name: 'switchboard_backend_state',
    help: "1 for a backend's current liveness (up, down or unknown), 0 for the others.",
    labelNames: ['backend', 'state'] as const,
    registers,
  });
  const backendLoad = new Gauge({
    name: 'switchboard_backend_load',
    help: "1 for a backend's current load level (idle, normal, busy, very_busy), 0 for the others.",
    labelNames: ['backend', 'level'] as const,
    registers,
  });
  const inference = new Histogram({
    name: 'switchboard_inference_duration_seconds',
    help: 'One call to a backend, by kind (stream, or complete: classifier, phrasing, load pings) and outcome (ok, error, cancelled).',
    labelNames: ['backend', 'kind', 'outcome'] as const,
    buckets: LONG_BUCKETS,
    registers,
  });
  const healthProbe = new Histogram({
    name: 'switchboard_health_probe_duration_seconds',
    help: "A backend's health probe (GET /models), by outcome (ok, error).",
    labelNames: ['backend', 'outcome'] as const,
    buckets: SHORT_BUCKETS,
    registers,
  });
  const slotDrain = new Histogram({
    name: 'switchboard_backend_slot_drain_seconds',
    help: "How long a backend's slot stayed draining after its request was cancelled, until it was free again.",
    labelNames: ['backend'] as const,
    buckets: SHORT_BUCKETS,
    registers,
  });
  const wsConnections = new Gauge({
    name: 'switchboard_websocket_connections',
    help: 'WebSocket connections held (open or closing).',
    registers,
  });
  const wsBuffered = new Gauge({
    name: 'switchboard_websocket_buffered_bytes',
    help: 'Bytes owed to WebSocket clients: unsent in sockets plus frames queued for slow readers.',
    registers,
  });
  const journalLag = new Histogram({
    name: 'switchboard_journal_batch_lag_seconds',
    help: "How long a store write (journal events, accepts, answers) waited in the ordered writer until its batch committed.",
    buckets: SHORT_BUCKETS,
    registers,
  });
  const synologyRetries = new Counter({
    name: 'switchboard_synology_send_retries_total',
    help: 'Posts to Synology Chat that failed and were tried again.',
    registers,
  });

  const webSockets = new Set<() => WebSocketGauges>();
  const registry = Registry.merge([processMetrics(), own]);

  /** Reads the gauges from their sources: called by each scrape, so nothing is pushed between scrapes. */
  const readGauges = (): void => {
    const status = sources.status();
    jobsNow.set({ state: 'active' }, status.jobs.active);
    jobsNow.set({ state: 'pending' }, status.jobs.pending);
    for (const [backend, entry] of Object.entries(status.backends)) {
      queueWaiting.set({ backend }, entry.queue.waiting);
      queueRunning.set({ backend }, entry.queue.running);
      for (const state of BACKEND_STATES) backendState.set({ backend, state }, entry.state === state ? 1 : 0);
      for (const level of LOAD_LEVELS) backendLoad.set({ backend, level }, entry.load === level ? 1 : 0);
    }
    let connections = 0;
    let bufferedBytes = 0;
    for (const read of webSockets) {
      const gauges = read();
      connections += gauges.connections;
      bufferedBytes += gauges.bufferedBytes;
    }
    wsConnections.set(connections);
    wsBuffered.set(bufferedBytes);
  };

  return {
    registry,
    contentType: registry.contentType,
    scrape: async () => {
      readGauges();
      return registry.metrics();
    },
    watchWebSockets: (read) => {
      webSockets.add(read);
      return () => void webSockets.delete(read);
    },
    countSynologyRetry: () => synologyRetries.inc(),
    jobEnded: (outcome) => {
      const branch = outcome.branch === null ? 'none' : BRANCHES.has(outcome.branch) ? outcome.branch : 'other';
      const reason = outcome.reason === null ? 'none' : REASONS.has(outcome.reason) ? outcome.reason : 'other';
      jobs.inc({ branch, status: outcome.status, reason });
      jobDuration.observe({ branch, status: outcome.status }, outcome.totalMs / 1000);
      if (outcome.firstByteMs !== null) firstChunk.observe({ branch }, outcome.firstByteMs / 1000);
    },
    journalWriteCommitted: (waitedMs) => journalLag.observe(waitedMs / 1000),
    backends: {
      inference: (backend, kind, outcome, seconds) => inference.observe({ backend, kind, outcome }, seconds),
      healthProbe: (backend, outcome, seconds) => healthProbe.observe({ backend, outcome }, seconds),
      slotDrained: (backend, seconds) => slotDrain.observe({ backend }, seconds),
    },
  };
}
