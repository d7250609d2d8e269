import type { InspectionEvent } from 'xstate';
import { MAX_TRACE_STEPS, stateName, type TraceStep } from '../jobs/job-trace.js';

/** The event name of a step taken by an eventless (`always`) transition. */
export const ALWAYS = '(always)';

/**
 * The flight recorder: per job, the states its actor went through, each with the type of the event that
 * took it there and the time (never a payload). Each job actor gets its own small inspector (not the
 * global one): on a transition that changes its state value it pushes one step; nothing else is kept.
 *
 * The steps are handed over (`take`) when the job's end is journaled, which happens in the same
 * synchronous turn as the final transition (the job's terminal event is sent to the sink after XState
 * has recorded the microstep); a job whose end is never journaled (its accept failed) is forgotten at
 * the next microtask after it stopped, so nothing stays behind.
 */
export class JobTraceRecorder {
  private readonly live = new Map<string, TraceStep[]>();

  constructor(private readonly now: () => number = Date.now) {}

  /** The inspector of the job actor `jobId` (a pool member's root actor, id `actorId`). */
  inspectorFor(jobId: string, actorId: string): (event: InspectionEvent) => void {
    const steps: TraceStep[] = [];
    this.live.set(jobId, steps);
    let last: unknown;
    const push = (state: string, event: string): void => {
      const step = { state, event, at: this.now() };
      if (steps.length < MAX_TRACE_STEPS) steps.push(step);
      else steps[steps.length - 1] = step;
    };
    return (inspection) => {
      // Only the job actor itself: its invoked children (inference, tools) share its actor system.
      if ((inspection.actorRef as { id?: string }).id !== actorId) return;
      if (inspection.type === '@xstate.microstep') {
        const { snapshot } = inspection;
        const value = (snapshot as { value?: unknown }).value;
        // A chunk re-enters `waiting`: the same state value is no new step (a cheap check first).
        if (value !== last) {
          const name = stateName(value);
          // An eventless (`always`) transition is taken while its triggering event is still current: say so.
          const cause = inspection._transitions[0]?.eventType === '' ? ALWAYS : inspection.event.type;
          if (steps.length === 0 || steps[steps.length - 1]!.state !== name) push(name, cause);
          last = value;
        }
        const status = (snapshot as { status?: string }).status;
        if (status !== 'active') queueMicrotask(() => this.forget(jobId, steps));
        return;
      }
      // The first state (a machine's initial state has no microstep of its own).
      if (inspection.type === '@xstate.snapshot' && steps.length === 0 && inspection.event.type === 'xstate.init') {
        const value = (inspection.snapshot as { value?: unknown }).value;
        if (value !== undefined) {
          last = value;
          push(stateName(value), 'xstate.init');
        }
      }
    };
  }

  /** The steps of a running job so far (a copy), or undefined when it is not running here. */
  peek(jobId: string): TraceStep[] | undefined {
    return this.live.get(jobId)?.slice();
  }

  /** Hands over a job's steps (when its end is journaled) and forgets them. */
  take(jobId: string): TraceStep[] | undefined {
    const steps = this.live.get(jobId);
    this.live.delete(jobId);
    return steps;
  }

  /** Jobs being recorded (for tests: nothing stays behind). */
  get size(): number {
    return this.live.size;
  }

  private forget(jobId: string, steps: TraceStep[]): void {
    if (this.live.get(jobId) === steps) this.live.delete(jobId);
  }
}
