import type { SynologyDeliveryStore } from '../actors/store/synology-delivery-store.js';
import type { Config } from '../config/config-schema.js';
import type { JobEvent } from '../jobs/job-event.js';
import type { JobTraceBody } from '../jobs/job-trace.js';
import type { GatewayMetrics } from '../metrics/create-metrics.js';
import type { BackendStatus } from './backend-registry.js';

/** The body of `GET /status` and of the WebSocket `status` reply (DESIGN §5). */
export interface StatusBody {
  backends: Record<string, BackendStatus>;
  jobs: { active: number; pending: number };
}

export type JobSource = 'ws' | 'openai' | 'synology';

/** A message to answer, as a transport hands it over (already validated at its edge). */
export interface SubmitInput {
  text: string;
  source: JobSource;
  conversationId?: string;
  /** `auto` (the classifier pipeline, default) or a mode name from `config.modes`. */
  mode?: string;
  /** Who sent it (auth principal, Synology user id); jobs are only visible to their owner. */
  owner: string;
  /** For Synology: one conversation per user. */
  externalUser?: string;
  /** The client's id for this message: a repeat by the same owner within 24 h gets the same job. */
  clientMsgId?: string;
  /**
   * The turns before `text`, oldest first, when the client holds the conversation (the OpenAI API): the
   * job uses them instead of a stored conversation's.
   */
  history?: Array<{ role: 'user' | 'assistant'; content: string }>;
  /**
   * The client holds the conversation and nothing will be replayed (the OpenAI API): `submit` resolves
   * without waiting for the store, the job's events reach the subscriber without waiting for the journal,
   * and the job is journaled after delivery, for the trace and the metrics.
   */
  stateless?: boolean;
}

export interface Accepted {
  jobId: string;
  conversationId: string;
  /** The `clientMsgId` was seen before: this is the earlier job, and nothing new was started. */
  repeated: boolean;
}

/** The body of `GET /healthz` (DESIGN §5). */
export type HealthBody = { ok: true } | { ok: false; reason: string };

/**
 * Why a submission was refused before any job existed. `code` maps to the transports' error codes. A
 * store that cannot be used is not a refusal: it surfaces as the store's coded error
 * (`store_unavailable`, see `toErrorInfo`).
 */
export class SubmitRejected extends Error {
  constructor(
    readonly code: 'bad_request' | 'too_large' | 'unknown_mode' | 'unknown_conversation' | 'rate_limited' | 'shutting_down',
    message: string,
  ) {
    super(message);
  }
}

/** Stops a subscription. */
export type Unsubscribe = () => void;

/** The small interface transports use; they never reach past it. */
export interface Runtime {
  readonly config: Config;
  /**
   * Makes the user's message durable, creates the job and starts it (behind the conversation's earlier
   * jobs and the active-job cap). Resolves once the message is stored: that is when `accepted` may be sent.
   * A repeated `clientMsgId` resolves with the earlier job and starts nothing. Throws `SubmitRejected` for
   * an unknown mode or conversation, a message over the caps or with U+0000, or shutdown; a store that
   * cannot be used throws its coded `store_unavailable` error.
   */
  submit(input: SubmitInput): Promise<Accepted>;
  /** Cancels a job of `owner`; false when there is no such job (an already finished one returns true). */
  cancel(jobId: string, owner: string): Promise<boolean>;
  /**
   * Replays the stored events of a job of `owner` with `seq > afterSeq`, then delivers live events until
   * the terminal one (inclusive), in order, each exactly once. Resolves with an unsubscribe function, or
   * null for an unknown job. Works for jobs of earlier runs (replay only). Throws `SubmitRejected`
   * (`bad_request`) when the job has ended and nothing comes after `afterSeq`.
   */
  subscribe(jobId: string, owner: string, afterSeq: number, listener: (event: JobEvent) => void): Promise<Unsubscribe | null>;
  status(): StatusBody;
  /** Whether the store can be used now (it is asked, within a second). */
  health(): Promise<HealthBody>;
  start(): Promise<void>;
  /**
   * Stop accepting, give running jobs `graceMs`, cancel the rest, flush the journal, close the store.
   * `beforeClose` runs once every job has ended and before the store closes, with the time (`Date.now()`)
   * the grace period ends: what the transports still owe (Synology replies) is handed to the store then.
   */
  stop(graceMs?: number, options?: { beforeClose?: (graceEndsAt: number) => Promise<void> }): Promise<void>;
  /** The replies owed to Synology Chat users (the store's, once started). */
  synologyDeliveries(): SynologyDeliveryStore;
  /**
   * The flight recorder's timeline of a job of `owner` (the states it went through, the events between
   * them, how long each took; never a payload): so far for a running job, as journaled for an ended one.
   * Null for an unknown job or another owner's.
   */
  trace(jobId: string, owner: string): Promise<JobTraceBody | null>;
  /** This runtime's Prometheus metrics (`GET /metrics`), and what the transports report into them. */
  readonly metrics: GatewayMetrics;
}
