import type { ActorScope, AnyEventObject, AnyMachineSnapshot, AnyStateMachine } from 'xstate';
import { MAX_TRACE_STEPS, stateName, type TraceStep } from '../jobs/job-trace.js';

/**
 * The flight recorder: per job, the states its actor settled in, each with the type of the event that
 * took it there and the time (never a payload or a message).
 *
 * It wraps the job machine's logic rather than inspecting the actor: XState's inspection makes an object
 * per event, microstep and action, which cost more than the machine itself on a streamed chunk, whereas
 * this costs a comparison of two state values per event and an array push when the state changed. The
 * steps are therefore macrosteps: the state an event left the job in (eventless passes such as `branch`
 * take no time and are not listed).
 *
 * The steps are handed over (`take`) when the job's end is journaled, which happens in the same
 * synchronous turn as the final transition (XState runs the machine's `sendTo` the terminal event after
 * `transition` returned); a job whose end is never journaled (its accept failed) is forgotten at the next
 * microtask after it stopped, so nothing stays behind.
 */
export class JobTraceRecorder {
  /** Steps by job id; `byActor` finds them from the actor's id (`job:<jobId>`). */
  private readonly live = new Map<string, TraceStep[]>();
  private readonly byActor = new Map<string, { jobId: string; steps: TraceStep[] }>();

  constructor(
    /** The job id of an actor id. */
    private readonly jobIdOf: (actorId: string) => string = (actorId) => actorId.replace(/^job:/, ''),
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * `machine` recording its actors' steps: the same machine (an object whose prototype is `machine`) with
   * `getInitialSnapshot` and `transition` wrapped.
   */
  recording<TMachine extends AnyStateMachine>(machine: TMachine): TMachine {
    const initial = (scope: ActorScope<AnyMachineSnapshot, AnyEventObject>, input: unknown): AnyMachineSnapshot => {
      const snapshot = machine.getInitialSnapshot(scope as never, input as never) as AnyMachineSnapshot;
      const actorId = scope.self.id;
      const entry = { jobId: this.jobIdOf(actorId), steps: [] as TraceStep[] };
      this.byActor.set(actorId, entry);
      this.live.set(entry.jobId, entry.steps);
      push(entry.steps, stateName(snapshot.value), 'xstate.init', this.now());
      return snapshot;
    };
    const transition = (snapshot: AnyMachineSnapshot, event: AnyEventObject, scope: ActorScope<AnyMachineSnapshot, AnyEventObject>): AnyMachineSnapshot => {
      const next = machine.transition(snapshot as never, event as never, scope as never) as AnyMachineSnapshot;
      // A streamed chunk re-enters `waiting`: the same state value, no step, nothing allocated.
      if (next.value !== snapshot.value && !sameValue(next.value, snapshot.value)) {
        const entry = this.byActor.get(scope.self.id);
        if (entry !== undefined) push(entry.steps, stateName(next.value), event.type, this.now());
      }
      if (next.status !== 'active') {
        const actorId = scope.self.id;
        queueMicrotask(() => this.forget(actorId));
      }
      return next;
    };
    return Object.create(machine, { getInitialSnapshot: { value: initial }, transition: { value: transition } }) as TMachine;
  }

  /** The steps of a running job so far (a copy), or undefined when it is not running here. */
  peek(jobId: string): TraceStep[] | undefined {
    return this.live.get(jobId)?.slice();
  }

  /** Hands over a job's steps (when its end is journaled); later steps of it are not kept. */
  take(jobId: string): TraceStep[] | undefined {
    const steps = this.live.get(jobId);
    this.live.delete(jobId);
    return steps;
  }

  /** Jobs being recorded (for tests: nothing stays behind). */
  get size(): number {
    return this.byActor.size;
  }

  private forget(actorId: string): void {
    const entry = this.byActor.get(actorId);
    if (entry === undefined) return;
    this.byActor.delete(actorId);
    if (this.live.get(entry.jobId) === entry.steps) this.live.delete(entry.jobId);
  }
}

/** Appends a step; past the cap the last one is replaced, so the final state is always there. */
function push(steps: TraceStep[], state: string, event: string, at: number): void {
  const step = { state, event, at };
  if (steps.length < MAX_TRACE_STEPS) steps.push(step);
  else steps[steps.length - 1] = step;
}

/** Whether two state values name the same states (XState makes a new value object on every transition). */
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  let keys = 0;
  for (const key in a) {
    keys += 1;
    if (!Object.hasOwn(b, key) || !sameValue((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key])) return false;
  }
  for (const _ in b) keys -= 1;
  return keys === 0;
}
