/**
 * Job events as clients see them (DESIGN §4): `seq` is 1, 2, 3, … per job, and exactly one terminal
 * event (`done`, `error` or `cancelled`) comes last.
 */

export const JOB_EVENT_NAMES = [
  'ack',
  'queued',
  'processing',
  'rewrite',
  'result',
  'sources',
  'confirm',
  'done',
  'error',
  'cancelled',
] as const;

export type JobEventName = (typeof JOB_EVENT_NAMES)[number];

export const TERMINAL_EVENTS: ReadonlySet<JobEventName> = new Set(['done', 'error', 'cancelled']);

/** The data each event carries. */
export interface JobEventData {
  ack: Record<string, never>;
  queued: { position: number };
  processing: { message: string };
  rewrite: { content: string };
  result: { content: string };
  sources: { items: Array<{ id: string; title: string }> };
  confirm: { draft: Record<string, unknown> };
  done: Record<string, never>;
  error: { message: string; reason: string };
  cancelled: Record<string, never>;
}

/** An event as the machine emits it, before the hub numbers it. */
export type JobEventPayload = { [K in JobEventName]: { event: K; data: JobEventData[K] } }[JobEventName];

/** A numbered, timestamped job event: what is journaled, replayed and sent. */
export interface JobEvent {
  jobId: string;
  seq: number;
  event: JobEventName;
  data: Record<string, unknown>;
  /** ISO 8601. */
  at: string;
}

export function isTerminal(event: JobEventName): boolean {
  return TERMINAL_EVENTS.has(event);
}
