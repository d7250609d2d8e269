/**
 * The flight recorder's data: the states a job actor went through, each with the type of the event that
 * took it there and when. Types and times only — never a message, an answer or an event's payload.
 */

/** One recorded transition: the job entered `state` (a path like `route.streaming.waiting`) on `event` at `at`. */
export interface TraceStep {
  state: string;
  /** The type of the event that took the job there (`xstate.init` for the first state). */
  event: string;
  /** Milliseconds since the epoch. */
  at: number;
}

/** One state of a job's timeline, as `GET /jobs/:id/trace` and `npm run trace` show it. */
export interface TimelineEntry {
  state: string;
  /** The event that entered the state. */
  event: string;
  /** When it was entered (ISO 8601). */
  at: string;
  /** How long the job stayed in it; null for the last state (final, or where a live job is now). */
  ms: number | null;
  /** The event that left it; null for the last state. */
  leftOn: string | null;
}

/** The body of `GET /jobs/:id/trace`. */
export interface JobTraceBody {
  jobId: string;
  /** `running` while the job runs (the trace so far), else how it ended. */
  status: 'running' | 'done' | 'error' | 'cancelled';
  transitions: TimelineEntry[];
}

/** The most steps kept per job; past it the last one is replaced, so the final state is always there. */
export const MAX_TRACE_STEPS = 256;

/**
 * A state value as one string: `classify.waiting` for `{ classify: 'waiting' }`; parallel regions are
 * joined with `, ` (`a.x, b.y`).
 */
export function stateName(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || typeof value !== 'object') return String(value);
  const parts: string[] = [];
  for (const [key, child] of Object.entries(value)) {
    const inner = child === undefined || (typeof child === 'object' && child !== null && Object.keys(child).length === 0) ? '' : stateName(child);
    parts.push(inner === '' ? key : inner.includes(', ') ? `${key}.(${inner})` : `${key}.${inner}`);
  }
  return parts.join(', ');
}

/** The steps as a timeline: each state with how long the job stayed there and the event that left it. */
export function toTimeline(steps: readonly TraceStep[]): TimelineEntry[] {
  return steps.map((step, index) => {
    const next = steps[index + 1];
    return {
      state: step.state,
      event: step.event,
      at: new Date(step.at).toISOString(),
      ms: next === undefined ? null : Math.max(0, next.at - step.at),
      leftOn: next === undefined ? null : next.event,
    };
  });
}

/** Reads a stored trace (jsonb) back, keeping only well-formed steps. */
export function parseTrace(stored: unknown): TraceStep[] {
  if (!Array.isArray(stored)) return [];
  return stored.flatMap((item: unknown) => {
    if (typeof item !== 'object' || item === null) return [];
    const { state, event, at } = item as Record<string, unknown>;
    return typeof state === 'string' && typeof event === 'string' && typeof at === 'number' ? [{ state, event, at }] : [];
  });
}
